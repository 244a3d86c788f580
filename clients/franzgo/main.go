// Command franzgo is K6SUITE's recording franz-go client: one producer or one consumer of a workload,
// writing the suite's history rows (docs/history-format.md) as JSON lines on stdout; or, as a worker
// process (role "worker"), several producers writing their rows into a history shard of their own.
//
// It takes its task as one JSON argument (see task) and stops when its standard input closes or
// says "stop". Times are CLOCK_MONOTONIC nanoseconds, the clock Python's time.monotonic_ns() reads
// on Linux, so its rows and the suite's share one time line on one machine; wall_ns is the wall
// clock. Lines carrying "event" are control messages for the suite (ready, polled), not rows.
//
// A worker speaks the protocol of k6suite_lib/workload/workers.py: it makes its producers' clients,
// says ready, waits for "go" on stdin and answers with its clock, then relays what the workload's
// waits need (acknowledged identities, the last acknowledgement per partition, outcomes) every 100 ms
// on stdout while its rows go to the shard file (JSON lines, the metadata line first): recording costs
// a row encoded into a buffer, not a row parsed and stored by the suite's Python process.
//
// A bare worker ("bare": true; benchmarks/harness_ceiling.py's bare franz-go) runs the same producers
// on the same schedule but records nothing: one fixed payload, no rows, nothing relayed; it keeps each
// send's due and acknowledgement time in memory and writes them into its shard file when it ends, as
// little-endian int64 pairs (due_ns, acked_ns; -1: not acknowledged). What it sustains is franz-go's
// ceiling on the machine, against which the recording workers are measured.
//
// The client runs with franz-go's defaults (idempotent writes, acks=all) plus what the workload's
// contract needs: the shared request timeout (also a produce's client-side deadline: the task's options),
// the delivery timeout, explicit partitions for round-robin sends, no automatic commits, and the API
// version caps the suite derived from the system.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
)

type task struct {
	Role             string          `json:"role"` // producer | consumer
	Name             string          `json:"name"`
	RunID            string          `json:"run_id"`
	Topic            string          `json:"topic"`
	Brokers          []string        `json:"brokers"`
	RequestTimeoutMs int             `json:"request_timeout_ms"`
	DeliveryTimeout  float64         `json:"delivery_timeout_s"`
	Idempotent       bool            `json:"idempotent"`
	Caps             map[int16]int16 `json:"caps"`
	// producer
	Index          int     `json:"index"`
	Records        int     `json:"records"` // -1: until stopped
	Rate           float64 `json:"rate"`    // sends per second; 0: closed loop
	Partitions     int     `json:"partitions"`
	Keyed          bool    `json:"keyed"`
	MessageBytes   int     `json:"message_bytes"`
	MaxOutstanding int     `json:"max_outstanding"`
	// consumer
	Group  string  `json:"group"`
	Commit bool    `json:"commit"`
	Lane   []int32 `json:"lane"`
	// SessionTimeoutMs, HeartbeatIntervalMs: a group member's, set only where the workload gives them (> 0);
	// otherwise franz-go's defaults (kgo.SessionTimeout 45 s, kgo.HeartbeatInterval 3 s), as a user runs it
	SessionTimeoutMs    int `json:"session_timeout_ms"`
	HeartbeatIntervalMs int `json:"heartbeat_interval_ms"`
	// ClientMetricsS > 0: a client-metrics row (connection totals) this often, in seconds
	ClientMetricsS float64 `json:"client_metrics_s"`
	// Options: the produce timeouts the suite derives from the request timeout (k6suite_lib/workload/franzgo.py
	// producer_options, which says why); the program sets exactly these
	Options produceOptions `json:"options"`
	// AutoCreate: the workload produces to a topic nobody created and asks the system to create it
	// (franz-go asks only when told to; kafka-python and librdkafka producers ask by default).
	AutoCreate bool `json:"auto_create"`
	// worker: its id, its producers' tasks and the shard file its rows go to
	Worker    int    `json:"worker"`
	Producers []task `json:"producers"`
	Shard     string `json:"shard"`
	Bare      bool   `json:"bare"` // record nothing; keep send times only (see the package comment)

	counter *connections // the client's connection hooks when the workload samples clients
}

// connections counts a client's broker connections from franz-go's own hooks: every dial
// (OnBrokerConnect, err set when it failed), every successful one, and every close of a successful
// one (OnBrokerDisconnect). franz-go holds up to five connections per broker (produce, fetch, group,
// slow and normal requests: kgo/broker.go) and a seed broker's are its own, so these count each.
type connections struct {
	mu       sync.Mutex
	byBroker map[string]*[3]int64 // kgo.NodeName (a seed: "seed_N") -> created, closed, attempts
}

func (c *connections) count(meta kgo.BrokerMetadata, column int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := kgo.NodeName(meta.NodeID)
	if c.byBroker[name] == nil {
		c.byBroker[name] = &[3]int64{}
	}
	c.byBroker[name][column]++
}

func (c *connections) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	c.count(meta, 2)
	if err == nil {
		c.count(meta, 0)
	}
}

func (c *connections) OnBrokerDisconnect(meta kgo.BrokerMetadata, _ net.Conn) { c.count(meta, 1) }

// detail is a client-metrics row's detail: the totals, and per broker [created, closed, attempts].
func (c *connections) detail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var totals [3]int64
	perBroker := map[string][3]int64{}
	for name, counts := range c.byBroker {
		perBroker[name] = *counts
		for i := range totals {
			totals[i] += counts[i]
		}
	}
	detail, _ := json.Marshal(map[string]any{"connection-creation-total": totals[0], "connection-close-total": totals[1],
		"connection-attempts-total": totals[2], "per-broker": perBroker})
	return string(detail)
}

// sampleConnections writes a client-metrics row for the client every ClientMetricsS until done closes
// (docs/history-format.md, "Client-metrics rows"); franz-go exposes no broker list, so none is written.
func sampleConnections(t *task, done <-chan struct{}) {
	ticker := time.NewTicker(time.Duration(t.ClientMetricsS * float64(time.Second)))
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			now := monoNow()
			sample := newRow(opIDs.Add(1), t.Name, "client-metrics", "ok", now, now, time.Now().UnixNano())
			sample.Detail = t.counter.detail()
			rows.row(sample)
		case <-done:
			return
		}
	}
}

// sampled starts the client's sampler when the workload samples clients; the returned func stops it and
// returns once it has stopped, so that no row follows the stop (the program's last flush, a test's sink).
func sampled(t *task) func() {
	if t.counter == nil {
		return func() {}
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		sampleConnections(t, done)
	}()
	return func() {
		close(done)
		<-stopped
	}
}

type produceOptions struct {
	ProduceRequestTimeoutMs  int `json:"ProduceRequestTimeout_ms"`
	RequestTimeoutOverheadMs int `json:"RequestTimeoutOverhead_ms"`
}

var (
	stdout  = newSink(os.Stdout, nil)
	rows    = stdout // a worker's rows go to its shard instead
	opIDs   atomic.Int64
	monoRef int64
	timeRef time.Time
	runID   string
)

// Row is one history row (docs/history-format.md, "Columns"), every column written.
type Row struct {
	OpID                         int64
	Process, F, Type             string
	InvokeNs, CompleteNs, WallNs int64
	Topic                        string
	Partition, Offset            int64
	Key, Producer                string
	Seq, Checksum                int64
	Corrupt                      bool
	RecordRun                    string
	ValueLen, IntendedNs         int64
	Session                      int64
	Error, Detail                string
}

// newRow is a row of operation op with the format's defaults for the columns it does not set.
func newRow(op int64, process, f, kind string, invoke, complete, wall int64) *Row {
	return &Row{OpID: op, Process: process, F: f, Type: kind, InvokeNs: invoke, CompleteNs: complete, WallNs: wall,
		Partition: -1, Offset: -1, Seq: -1, Checksum: -1, IntendedNs: -1}
}

// appendJSON writes the row as one JSON line by hand: encoding/json's reflection would cost more than
// the send it records.
func (r *Row) appendJSON(b []byte) []byte {
	b = appendString(append(b, `{"run_id":`...), runID)
	b = strconv.AppendInt(append(b, `,"op_id":`...), r.OpID, 10)
	b = appendString(append(b, `,"process":`...), r.Process)
	b = appendString(append(b, `,"f":`...), r.F)
	b = appendString(append(b, `,"type":`...), r.Type)
	b = strconv.AppendInt(append(b, `,"invoke_ns":`...), r.InvokeNs, 10)
	b = strconv.AppendInt(append(b, `,"complete_ns":`...), r.CompleteNs, 10)
	b = strconv.AppendInt(append(b, `,"wall_ns":`...), r.WallNs, 10)
	b = appendString(append(b, `,"topic":`...), r.Topic)
	b = strconv.AppendInt(append(b, `,"partition":`...), r.Partition, 10)
	b = strconv.AppendInt(append(b, `,"offset":`...), r.Offset, 10)
	b = appendString(append(b, `,"key":`...), r.Key)
	b = appendString(append(b, `,"producer":`...), r.Producer)
	b = strconv.AppendInt(append(b, `,"seq":`...), r.Seq, 10)
	b = strconv.AppendInt(append(b, `,"checksum":`...), r.Checksum, 10)
	b = strconv.AppendBool(append(b, `,"corrupt":`...), r.Corrupt)
	b = appendString(append(b, `,"record_run":`...), r.RecordRun)
	b = strconv.AppendInt(append(b, `,"value_len":`...), r.ValueLen, 10)
	b = strconv.AppendInt(append(b, `,"intended_ns":`...), r.IntendedNs, 10)
	b = strconv.AppendInt(append(b, `,"session":`...), r.Session, 10)
	b = appendString(append(b, `,"error":`...), r.Error)
	b = appendString(append(b, `,"detail":`...), r.Detail)
	return append(b, '}', '\n')
}

// appendString quotes s as JSON: plain ASCII as is, anything else through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			quoted, _ := json.Marshal(s)
			return append(b, quoted...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// sink is one buffered output of JSON lines, shared by the client's goroutines: they hand it their rows
// over a queue and one goroutine of its own encodes and writes them, in the order they arrived. A row
// recorded in franz-go's promise (its goroutine calls a client's promises one after another) thus costs
// the promise a channel send, not the encoding, a lock held by the other producers' promises, or a write
// into the file: a slow write no longer holds back the acknowledgements behind it.
type sink struct {
	queue chan entry
	w     *bufio.Writer
	buf   []byte
	relay *relay // a worker's shard: its send rows' outcomes, for the workload's waits; else nil
}

// entry is one thing to write: a row; or a line (a control line, bare send times) or a flush, each
// answered on done once it and everything queued before it is written out, a flush with what the relay
// collected since the last one.
type entry struct {
	row  *Row
	line []byte // nil: a flush
	done chan map[string]any
}

// queueLength bounds the rows waiting to be written (a few seconds of a worker's sends at its ceiling):
// past it, whoever records waits for the writer, as it waited for the lock before.
const queueLength = 1 << 16

func newSink(w io.Writer, outcomes *relay) *sink {
	s := &sink{queue: make(chan entry, queueLength), w: bufio.NewWriterSize(w, 1<<20), relay: outcomes}
	go s.write()
	return s
}

// write is the sink's goroutine: it runs until the process ends (late rows of a client being closed
// must find someone to take them).
func (s *sink) write() {
	for e := range s.queue {
		switch {
		case e.row != nil:
			s.buf = e.row.appendJSON(s.buf[:0])
			s.w.Write(s.buf)
			if r := e.row; s.relay != nil && r.F == "send" {
				s.relay.outcome(r.Producer, int(r.Seq), int32(r.Partition), r.CompleteNs, r.Type == "ok")
			}
		case e.line != nil:
			s.w.Write(e.line)
			s.w.Flush()
			e.done <- nil
		default:
			s.w.Flush()
			e.done <- s.relay.take()
		}
	}
}

func (s *sink) row(r *Row) { s.queue <- entry{row: r} }

// line writes b (not nil) after everything queued before it and returns once it is written out: the
// process may end right after its last line.
func (s *sink) line(b []byte) {
	done := make(chan map[string]any)
	s.queue <- entry{line: b, done: done}
	<-done
}

// event writes a control line: the workload reads its clock when it arrives.
func (s *sink) event(v any) {
	line, _ := json.Marshal(v)
	s.line(append(line, '\n'))
}

// flush returns once every row and line queued before it is written out, with what settled since the last
// flush (a worker's shard; nil otherwise): those outcomes' rows are in the file before anyone hears of them.
func (s *sink) flush() map[string]any {
	done := make(chan map[string]any)
	s.queue <- entry{done: done}
	return <-done
}

// relay collects a worker's outcomes between two relay lines; only its sink's goroutine touches it.
type relay struct {
	acks map[string][]int
	last map[int32]int64
	done int
}

func newRelay() *relay { return &relay{acks: map[string][]int{}, last: map[int32]int64{}} }

func (r *relay) outcome(producer string, seq int, partition int32, complete int64, ok bool) {
	if ok {
		r.acks[producer] = append(r.acks[producer], seq)
		if complete > r.last[partition] {
			r.last[partition] = complete
		}
	} else {
		r.done++
	}
}

// take is what settled since the last call, as the workload's relay line wants it (nil without a relay).
func (r *relay) take() map[string]any {
	if r == nil {
		return nil
	}
	message := map[string]any{"acked": r.acks, "last_ack_ns": r.last, "done": r.done}
	r.acks, r.last, r.done = map[string][]int{}, map[int32]int64{}, 0
	return message
}

// monoNow is CLOCK_MONOTONIC in ns: read once by syscall, then advanced by Go's monotonic clock.
func monoNow() int64 { return monoRef + int64(time.Since(timeRef)) }

func initClock() {
	var ts syscall.Timespec
	timeRef = time.Now()
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		fmt.Fprintln(os.Stderr, "clock_gettime(CLOCK_MONOTONIC):", errno)
		os.Exit(2)
	}
	monoRef = ts.Nano()
}

func flushLoop(stop <-chan struct{}) {
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			stdout.flush()
		case <-stop:
			return
		}
	}
}

func errText(err error) string {
	text := fmt.Sprintf("%T: %v", err, err)
	var ke *kerr.Error
	if errors.As(err, &ke) {
		kind := "not retriable"
		if ke.Retriable {
			kind = "retriable"
		}
		text = fmt.Sprintf("kerr %s (%s): %s", ke.Message, kind, ke.Description)
	}
	if len(text) > 500 {
		text = text[:500]
	}
	return text
}

// sendOutcome: fail only when the record certainly reached no log: refused by authorization, too
// large, or never sent (the client closed or its buffer was full before it was sent). A record
// timeout or retry limit is info: it may have been written before the client gave up.
func sendOutcome(err error) string {
	for _, definite := range []error{kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed,
		kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord, kgo.ErrMaxBuffered} {
		if errors.Is(err, definite) {
			return "fail"
		}
	}
	return "info"
}

// payload is history.encode_payload: magic|run|producer|seq|crc32(body) as 8 hex digits|body.
func payload(runID, producer string, seq, size int) ([]byte, uint32) {
	head := "k6s1|" + runID + "|" + producer + "|" + strconv.Itoa(seq)
	bodyLen := size - len(head) - 10
	if bodyLen < 0 {
		bodyLen = 0
	}
	unit := producer + ":" + strconv.Itoa(seq) + ":"
	body := []byte(strings.Repeat(unit, bodyLen/8+1))[:bodyLen]
	crc := crc32.ChecksumIEEE(body)
	return []byte(fmt.Sprintf("%s|%08x|%s", head, crc, body)), crc
}

// recordingLogger turns franz-go's own log into client-log rows, and its retried produce batches
// into retry rows (which producer, topic and partition resent a batch).
type recordingLogger struct{ t *task }

func (l recordingLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (l recordingLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	fields := map[string]any{}
	for i := 0; i+1 < len(keyvals); i += 2 {
		fields[fmt.Sprint(keyvals[i])] = keyvals[i+1]
	}
	_, hasErr := fields["err"]
	noID := strings.Contains(msg, "continuing without a producer id")
	if level > kgo.LogLevelWarn && !hasErr && !noID {
		return // routine information (connections, metadata) is not an error the client handled
	}
	if noID { // the default idempotence silently dropped: the suite notes it
		stdout.event(map[string]string{"event": "not-idempotent", "name": l.t.Name, "why": msg})
	}
	now, wall := monoNow(), time.Now().UnixNano()
	parts := []string{fmt.Sprintf("%s franz-go: %s", level, msg)}
	for k, v := range fields {
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	text := strings.Join(parts, " ")
	if len(text) > 500 {
		text = text[:500]
	}
	detail, _ := json.Marshal(map[string]string{"logger": "franz-go", "level": level.String()})
	logged := newRow(opIDs.Add(1), "client-log", "client-log", "info", now, now, wall)
	logged.Error, logged.Detail = text, string(detail)
	rows.row(logged)
	retried := msg == "batch in a produce request failed" && fields["max_retries_reached"] == false ||
		msg == "produce partition load error, bumping error count on first stored batch"
	if l.t.Role == "producer" && retried && fmt.Sprint(fields["topic"]) == l.t.Topic {
		partition, _ := strconv.Atoi(fmt.Sprint(fields["partition"]))
		retry := newRow(opIDs.Add(1), l.t.Name, "retry", "info", now, now, wall)
		retry.Producer, retry.Topic, retry.Partition, retry.Error = l.t.Name, l.t.Topic, int64(partition), text
		rows.row(retry)
	}
}

func options(t *task) []kgo.Opt {
	timeout := time.Duration(t.RequestTimeoutMs) * time.Millisecond
	opts := []kgo.Opt{
		kgo.SeedBrokers(t.Brokers...),
		kgo.ClientID(t.RunID + "-" + t.Name),
		kgo.RequestTimeoutOverhead(timeout),
		kgo.WithLogger(recordingLogger{t}),
	}
	if t.counter != nil {
		opts = append(opts, kgo.WithHooks(t.counter))
	}
	if len(t.Caps) > 0 {
		versions := kversion.Stable()
		for key, max := range t.Caps {
			versions.SetMaxKeyVersion(key, max)
		}
		opts = append(opts, kgo.MaxVersions(versions))
	}
	return opts
}

func main() {
	initClock()
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: franzgo TASK-JSON")
		os.Exit(2)
	}
	var t task
	if err := json.Unmarshal([]byte(os.Args[1]), &t); err != nil {
		fmt.Fprintln(os.Stderr, "bad task:", err)
		os.Exit(2)
	}
	runID = t.RunID
	if t.Role == "worker" {
		if err := work(&t); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		return
	}
	stop := make(chan struct{})
	go func() { // the suite says stop (or goes away)
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() && scanner.Text() != "stop" {
		}
		close(stop)
	}()
	flushStop := make(chan struct{})
	go flushLoop(flushStop)
	var err error
	if t.Role == "producer" {
		var cl *kgo.Client
		if cl, err = newProducer(&t); err == nil {
			stdout.event(map[string]string{"event": "ready"})
			produce(&t, cl, stop, nil)
		}
	} else {
		err = consume(&t, stop)
	}
	if err != nil {
		connectFailure(t.Name, err)
	}
	close(flushStop)
	stdout.flush()
}

func connectFailure(name string, err error) {
	now := monoNow()
	failed := newRow(opIDs.Add(1), name, "connect", "fail", now, now, time.Now().UnixNano())
	failed.Error = errText(err)
	rows.row(failed)
}

// work runs a worker: its producers' clients made before it says ready, its clock at "go" answered,
// its outcomes relayed every 100 ms while the producers run, its rows flushed into its shard at each relay.
func work(t *task) error {
	file, err := os.Create(t.Shard)
	if err != nil {
		return err
	}
	rows = newSink(file, newRelay())
	if !t.Bare {
		rows.event(map[string]any{"k6suite": map[string]any{
			"format_version": 2, "run_id": t.RunID, "worker": t.Worker, "client": "franz-go"}})
	}
	clients := make([]*kgo.Client, len(t.Producers))
	bare := make([]*bareSends, len(t.Producers))
	for i := range t.Producers {
		if t.Bare {
			if bare[i], err = newBareSends(&t.Producers[i]); err != nil {
				return err
			}
		}
		if clients[i], err = newProducer(&t.Producers[i]); err != nil {
			if t.Bare {
				return err
			}
			connectFailure(t.Producers[i].Name, err)
		}
	}
	stdout.event(map[string]string{"event": "ready"})
	input := bufio.NewScanner(os.Stdin)
	if input.Scan() && input.Text() == "go" {
		stdout.event(map[string]any{"event": "go", "mono_ns": monoNow()})
		stop := make(chan struct{})
		go func() { // any further line, or the end of stdin, stops the producers
			input.Scan()
			close(stop)
		}()
		var producers sync.WaitGroup
		for i, cl := range clients {
			if cl != nil {
				producers.Add(1)
				go func() {
					defer producers.Done()
					produce(&t.Producers[i], cl, stop, bare[i])
				}()
			}
		}
		finished := make(chan struct{})
		go func() {
			producers.Wait()
			close(finished)
		}()
		ticker := time.NewTicker(100 * time.Millisecond)
		for running := true; running; {
			select {
			case <-ticker.C:
				// the rows reach the shard before their outcomes reach the workload: a crash or a kill
				// loses at most the rows since the last tick, none of an outcome it relayed
				stdout.event(rows.flush())
			case <-finished:
				running = false
			}
		}
		ticker.Stop()
	} else {
		for _, cl := range clients {
			if cl != nil {
				cl.Close()
			}
		}
	}
	stdout.event(rows.flush())
	if t.Bare {
		pairs := bytes.NewBuffer([]byte{})
		for _, sends := range bare {
			if err := sends.write(pairs); err != nil {
				return err
			}
		}
		rows.line(pairs.Bytes())
	}
	rows.flush()
	return file.Close()
}

// counting gives the task's client its connection hooks when the workload samples clients.
func counting(t *task) {
	if t.ClientMetricsS > 0 {
		t.counter = &connections{byBroker: map[string]*[3]int64{}}
	}
}

// bareSends is what a bare producer keeps of its sends: when each was due and when it was
// acknowledged (-1: not), in arrays made before it starts so that keeping them costs two stores.
type bareSends struct {
	due, acked []int64
	made       int // sends made; written by the producer's goroutine, read after it ended
	value      []byte
}

func newBareSends(t *task) (*bareSends, error) {
	if t.Records <= 0 {
		return nil, fmt.Errorf("a bare producer needs its number of records (the capacity of its send times)")
	}
	value, _ := payload(t.RunID, t.Name, 0, t.MessageBytes)
	return &bareSends{due: make([]int64, t.Records), acked: make([]int64, t.Records), value: value}, nil
}

// promise keeps send seq's times; acked is written by franz-go's goroutine before outstanding drops.
func (b *bareSends) promise(seq int, due int64, outstanding *atomic.Int64) func(*kgo.Record, error) {
	b.due[seq], b.acked[seq], b.made = due, -1, seq+1
	return func(_ *kgo.Record, err error) {
		if err == nil {
			b.acked[seq] = monoNow()
		}
		outstanding.Add(-1)
	}
}

func (b *bareSends) write(w io.Writer) error {
	if b == nil {
		return nil
	}
	pairs := make([]int64, 0, 2*b.made)
	for seq := range b.made {
		pairs = append(pairs, b.due[seq], b.acked[seq])
	}
	return binary.Write(w, binary.LittleEndian, pairs)
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// Rejoin bounds: franz-go rejoins by itself after it injects ErrGroupSession (kgo/consumer_group.go manage()
// loops to joinAndSync after manageFailWait has called OnPartitionsLost, injected the error and backed off;
// only a closed client ends that loop, and it injects nothing), whatever the cause, so a notice says nothing of
// whether the member will ever consume again. It is the client's own business (franz-go's "group manage loop
// errored" is a client-log row) only while the rejoin can succeed: its cause is transient and the member joins
// again soon. Saved Kafka 4.1.1 S4 histories (kill, terminate, pause; 30 franz-go runs) never show a second
// consecutive error (franz-go logs consecutive_errors=1) and every member joined again within 8.2 s; a group
// can take a session timeout to drop a member that will not come back before the join completes.
const maxRejoinFailures = 3 // this many notices since the member's last assignment are a failure

// rejoins follows a member's lost sessions since its last assignment (franz-go calls OnPartitionsAssigned on
// every successful join, "even if nothing new is assigned"), in the order of franz-go's group loop: it calls
// the group-manage-error hook, injects the notice, backs off, then joins (kgo/consumer_group.go
// manageFailWait, manage). The poll that drains a notice may come after that join (audit23 L1: a poll loop
// held up writing rows); it takes the verdict the loss was given when it happened.
type rejoins struct {
	mu       sync.Mutex
	limitNs  int64  // a member not joined again this long after its first loss has failed to rejoin
	firstNs  int64  // when the first loss since the last assignment came; 0: none
	count    int    // losses since the last assignment
	cause    string // the last one's
	reported bool   // the stall past limitNs was written
	verdicts []bool // per loss whose notice no poll has drained yet, oldest first: whether the notice is quiet
}

func newRejoins(t *task) *rejoins {
	session := t.SessionTimeoutMs
	if session <= 0 {
		session = 45000 // franz-go's default, kgo.SessionTimeout
	}
	return &rejoins{limitNs: 2 * int64(session) * int64(time.Millisecond)}
}

// joined: the member has a session again (a consumer outside a group has no rejoins: nil). Notices not yet
// drained keep their verdicts.
func (r *rejoins) joined() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.firstNs, r.count, r.cause, r.reported = 0, 0, "", false
}

// OnGroupManageError is kgo.HookGroupManageError: franz-go's group loop lost the session to err.
func (r *rejoins) OnGroupManageError(err error) { r.lost(err, monoNow()) }

// lost: the session was lost to cause at now; its notice will be quiet if the cause is transient and the loss
// is within the bounds.
func (r *rejoins) lost(cause error, now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.firstNs == 0 {
		r.firstNs = now
	}
	r.count++
	r.cause = errText(cause)
	r.verdicts = append(r.verdicts, transient(cause) && r.count < maxRejoinFailures && now-r.firstNs < r.limitNs)
}

// quiet: err is franz-go's notice of a loss that was transient and within the bounds; anything else a poll
// returns (a notice franz-go's group loop did not announce to the hook included) is the application's to
// handle. Notices are drained in the order they were injected.
func (r *rejoins) quiet(err error) bool {
	var session *kgo.ErrGroupSession
	if r == nil || !errors.As(err, &session) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.verdicts) == 0 {
		return false
	}
	verdict := r.verdicts[0]
	r.verdicts = r.verdicts[1:]
	return verdict
}

// stalled: once per streak, why a member whose last notice was quiet has not joined again within limitNs (a
// JoinGroup that never answers injects nothing more).
func (r *rejoins) stalled(now int64) string {
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.firstNs == 0 || r.reported || now-r.firstNs < r.limitNs {
		return ""
	}
	r.reported = true
	return fmt.Sprintf("no group session %.1f s after it was lost (%d notices, the last: %s)",
		float64(now-r.firstNs)/1e9, r.count, r.cause)
}

// brokenConnection is franz-go v1.22.3's errChosenBrokerDead (unexported): the request's connection died and
// it is retried on a new one.
const brokenConnection = "the broker connection has died and the request will be retried on a new connection"

// transient: a cause a rejoin on a new connection or with the new coordinator can clear. A connection that broke
// (EOF, a reset, a refused dial while the broker restarts, one request's deadline); a retriable Kafka error
// (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS); UNKNOWN_MEMBER_ID and ILLEGAL_GENERATION (the group dropped
// the member: the rejoin goes without the old member id, handleJoinResp, which the group accepts); anything
// else franz-go itself calls retryable (kgo.IsRetryableBrokerErr), such as a coordinator its metadata does not
// list yet (errUnknownCoordinator: every coordinator lookup reloads metadata, so a lagging broker list clears;
// one never listed, OBS-02, passes the bounds). Not: a connection closed before its first answer that
// franz-go itself will not retry (TLS, SASL or version trouble, ErrFirstReadEOF), a Kafka refusal
// (GROUP_AUTHORIZATION_FAILED, INVALID_SESSION_TIMEOUT), nor franz-go's other verdicts on the coordinator's
// answers (broker too old, a response it cannot decode, an omitted offset fetch): the same rejoin meets them
// again.
func transient(cause error) bool {
	var kafka *kerr.Error
	if errors.As(cause, &kafka) {
		return kafka.Retriable || kafka == kerr.UnknownMemberID || kafka == kerr.IllegalGeneration
	}
	var first *kgo.ErrFirstReadEOF
	if errors.As(cause, &first) {
		return kgo.IsRetryableBrokerErr(cause)
	}
	var network net.Error
	return errors.As(cause, &network) || errors.Is(cause, io.EOF) || errors.Is(cause, io.ErrUnexpectedEOF) ||
		errors.Is(cause, net.ErrClosed) || errors.Is(cause, context.DeadlineExceeded) ||
		cause.Error() == brokenConnection || kgo.IsRetryableBrokerErr(cause)
}

func newProducer(t *task) (*kgo.Client, error) {
	counting(t)
	if t.Options.ProduceRequestTimeoutMs <= 0 || t.Options.RequestTimeoutOverheadMs <= 0 {
		return nil, fmt.Errorf("task without its produce timeouts: %+v", t.Options)
	}
	opts := append(options(t),
		kgo.RequestTimeoutOverhead(time.Duration(t.Options.RequestTimeoutOverheadMs)*time.Millisecond),
		kgo.ProduceRequestTimeout(time.Duration(t.Options.ProduceRequestTimeoutMs)*time.Millisecond),
		kgo.RecordDeliveryTimeout(time.Duration(t.DeliveryTimeout*float64(time.Second))))
	if !t.Keyed {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	if !t.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if t.AutoCreate {
		opts = append(opts, kgo.AllowAutoTopicCreation())
	}
	return kgo.NewClient(opts...)
}

// produce runs one producer's schedule: its sends recorded as rows, or (bare) their times kept only.
func produce(t *task, cl *kgo.Client, stop <-chan struct{}, bare *bareSends) {
	defer sampled(t)()
	var outstanding atomic.Int64
	start := monoNow()
	slot := 0
	for seq := 0; (t.Records < 0 || seq < t.Records) && !stopped(stop); seq++ {
		intended := int64(-1)
		if t.Rate > 0 {
			intended = start + int64(float64(slot)*1e9/t.Rate)
			slot++
			if wait := time.Duration(intended - monoNow()); wait > 0 {
				select {
				case <-time.After(wait):
				case <-stop:
				}
				if stopped(stop) {
					break
				}
			}
		}
		record := &kgo.Record{Topic: t.Topic}
		if t.Keyed {
			record.Key = []byte(t.Name)
		} else {
			record.Partition = int32((seq + t.Index) % t.Partitions)
		}
		outstanding.Add(1)
		if bare != nil {
			if seq >= len(bare.due) {
				outstanding.Add(-1)
				break
			}
			record.Value = bare.value
			cl.Produce(context.Background(), record, bare.promise(seq, intended, &outstanding))
		} else {
			cl.Produce(context.Background(), record, recordedSend(t, seq, intended, record, &outstanding))
		}
		if outstanding.Load() > int64(t.MaxOutstanding) {
			deadline := time.Now().Add(time.Duration(t.DeliveryTimeout * float64(time.Second)))
			for outstanding.Load() > int64(t.MaxOutstanding) && time.Now().Before(deadline) && !stopped(stop) {
				time.Sleep(time.Millisecond)
			}
			if t.Rate > 0 { // due sends that passed while blocked: offered, never made
				until, wall := monoNow(), time.Now().UnixNano()
				for due := start + int64(float64(slot)*1e9/t.Rate); due < until; due = start + int64(float64(slot)*1e9/t.Rate) {
					if bare == nil {
						blocked := newRow(opIDs.Add(1), t.Name, "blocked", "fail", due, until, wall-(until-due))
						blocked.Topic, blocked.Producer, blocked.IntendedNs = t.Topic, t.Name, due
						blocked.Error = fmt.Sprintf("not sent: %d sends outstanding (max_outstanding)", outstanding.Load())
						rows.row(blocked)
					}
					slot++
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(t.DeliveryTimeout*float64(time.Second)))
	cl.Flush(ctx)
	cancel()
	cl.Close() // fails what is still buffered: those rows say so (info, client closed)
	// franz-go finishes those promises on its own goroutines after Close returns: wait (bounded) for their rows
	for deadline := time.Now().Add(5 * time.Second); outstanding.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// recordedSend gives the record its identity payload and returns its promise, which completes its send
// row (the acknowledgement's time taken first) and hands it to the sink.
func recordedSend(t *task, seq int, intended int64, record *kgo.Record, outstanding *atomic.Int64) func(*kgo.Record, error) {
	value, crc := payload(t.RunID, t.Name, seq, t.MessageBytes)
	record.Value = value
	send := newRow(opIDs.Add(1), t.Name, "send", "", 0, 0, time.Now().UnixNano())
	send.Topic, send.Key, send.Producer, send.Seq, send.Checksum = t.Topic, string(record.Key), t.Name, int64(seq), int64(crc)
	send.ValueLen, send.IntendedNs = int64(len(value)), intended
	send.InvokeNs = monoNow()
	return func(r *kgo.Record, err error) {
		send.CompleteNs = monoNow()
		if err == nil {
			send.Type, send.Partition, send.Offset = "ok", int64(r.Partition), r.Offset
		} else {
			send.Type, send.Error = sendOutcome(err), errText(err)
			if !t.Keyed {
				send.Partition = int64(r.Partition)
			}
		}
		// a worker's sink relays the outcome once the row is written; outstanding drops after the row is
		// queued, so the flush after the producer's end writes every row
		rows.row(send)
		outstanding.Add(-1)
	}
}

func consume(t *task, stop <-chan struct{}) error {
	session := int64(0)
	var mu sync.Mutex
	owned := map[int32]bool{}
	var rejoin *rejoins
	if t.Group != "" {
		rejoin = newRejoins(t)
	}
	// franz-go's default balancer is cooperative-sticky: its callbacks name only the partitions added or
	// taken away. An assign row lists everything the member holds after the change, as an eager
	// protocol's does (the history's group checks read a member's holdings from its last assignment).
	assignment := func(kind string, changed map[string][]int32) {
		mu.Lock()
		defer mu.Unlock()
		partitions := changed[t.Topic]
		for _, p := range partitions {
			owned[p] = kind == "assign"
		}
		if kind == "assign" {
			rejoin.joined()
			session++
			partitions = []int32{}
			for p, held := range owned {
				if held {
					partitions = append(partitions, p)
				}
			}
			sort.Slice(partitions, func(i, j int) bool { return partitions[i] < partitions[j] })
		}
		if partitions == nil {
			partitions = []int32{}
		}
		detail, _ := json.Marshal(map[string]any{"partitions": partitions, "group": t.Group != ""})
		now := monoNow()
		change := newRow(opIDs.Add(1), t.Name, kind, "ok", now, now, time.Now().UnixNano())
		change.Topic, change.Session, change.Detail = t.Topic, session, string(detail)
		rows.row(change)
	}
	counting(t)
	cl, err := kgo.NewClient(consumerOptions(t, rejoin, assignment)...)
	if err != nil {
		return err
	}
	defer sampled(t)()
	if t.Group == "" {
		assignment("assign", map[string][]int32{t.Topic: t.Lane})
	}
	stdout.event(map[string]string{"event": "ready"})
	polled := false
	for !stopped(stop) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		op, invoke, wall := opIDs.Add(1), monoNow(), time.Now().UnixNano()
		fetches := cl.PollRecords(ctx, 500)
		cancel()
		complete := monoNow()
		mu.Lock()
		epoch := session
		mu.Unlock()
		polls := pollRows(t, fetches, rejoin, op, invoke, complete, wall, epoch)
		for _, row := range polls {
			rows.row(row)
		}
		if len(polls) == 1 && polls[0].Type != "ok" {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if !polled {
			polled = true
			stdout.event(map[string]string{"event": "polled"})
		}
		if len(polls) > 0 && t.Group != "" && t.Commit {
			commit(t, cl, epoch)
		}
	}
	cl.Close()
	return nil
}

// consumerOptions: a consumer's client options; a group member's callbacks, and its rejoins as franz-go's
// group-manage-error hook, or the partitions of its lane.
func consumerOptions(t *task, rejoin *rejoins, assignment func(kind string, changed map[string][]int32)) []kgo.Opt {
	opts := append(options(t), kgo.FetchMaxWait(200*time.Millisecond))
	if t.Group == "" {
		lane := map[int32]kgo.Offset{}
		for _, p := range t.Lane {
			lane[p] = kgo.NewOffset().AtStart()
		}
		return append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{t.Topic: lane}))
	}
	if t.SessionTimeoutMs > 0 {
		opts = append(opts, kgo.SessionTimeout(time.Duration(t.SessionTimeoutMs)*time.Millisecond))
	}
	if t.HeartbeatIntervalMs > 0 {
		opts = append(opts, kgo.HeartbeatInterval(time.Duration(t.HeartbeatIntervalMs)*time.Millisecond))
	}
	return append(opts, kgo.ConsumerGroup(t.Group), kgo.ConsumeTopics(t.Topic), kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { assignment("assign", a) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { assignment("revoke", r) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { assignment("revoke", r) }),
		kgo.WithHooks(rejoin))
}

// pollRows is what one poll writes: a row per record, and one failed poll naming the errors the application must
// handle (not its own poll deadline, not franz-go's notice that it is rejoining its group within the rejoin bounds,
// see rejoins), also when the same poll returned records (audit24 L3: a rejoin notice judged not quiet, or a
// partition's ErrDataLoss, drained beside buffered records was dropped), under an op id of its own (the records of
// one poll share theirs); without records, a member's rejoin that stalled past the bounds fails it too; nothing for
// an empty poll.
func pollRows(t *task, fetches kgo.Fetches, rejoin *rejoins, op, invoke, complete, wall, epoch int64) []*Row {
	var failures []string
	fetches.EachError(func(topic string, partition int32, err error) { // every notice drained takes its verdict
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && !rejoin.quiet(err) {
			failures = append(failures, fmt.Sprintf("%s[%d]: %s", topic, partition, errText(err)))
		}
	})
	var rows []*Row
	fetches.EachRecord(func(r *kgo.Record) {
		rows = append(rows, pollRow(op, invoke, complete, wall, epoch, t.Name, r))
	})
	if len(rows) == 0 {
		if stall := rejoin.stalled(complete); stall != "" { // only a poll that writes it marks it written
			failures = append(failures, stall)
		}
	}
	if len(failures) == 0 {
		return rows
	}
	text := strings.Join(failures, "; ")
	if len(text) > 500 {
		text = text[:500]
	}
	failedOp := op
	if len(rows) > 0 {
		failedOp = opIDs.Add(1)
	}
	failed := newRow(failedOp, t.Name, "poll", "info", invoke, complete, wall)
	failed.Topic, failed.Session, failed.Error = t.Topic, epoch, text
	return append(rows, failed)
}

func pollRow(op, invoke, complete, wall, epoch int64, name string, r *kgo.Record) *Row {
	read := newRow(op, name, "poll", "ok", invoke, complete, wall)
	read.Topic, read.Partition, read.Offset, read.Key = r.Topic, int64(r.Partition), r.Offset, string(r.Key)
	read.ValueLen, read.Session, read.Corrupt = int64(len(r.Value)), epoch, true
	parts := strings.SplitN(string(r.Value), "|", 6)
	if len(parts) == 6 {
		seq, errSeq := strconv.Atoi(parts[3])
		crc, errCrc := strconv.ParseUint(parts[4], 16, 32)
		if errSeq == nil && errCrc == nil {
			read.Producer, read.Seq, read.Checksum, read.RecordRun = parts[2], int64(seq), int64(crc), parts[1]
			read.Corrupt = parts[0] != "k6s1" || uint64(crc32.ChecksumIEEE([]byte(parts[5]))) != crc
		}
	}
	return read
}

func commit(t *task, cl *kgo.Client, epoch int64) {
	op, invoke, wall := opIDs.Add(1), monoNow(), time.Now().UnixNano()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(t.RequestTimeoutMs)*time.Millisecond)
	defer cancel()
	err := cl.CommitUncommittedOffsets(ctx)
	done := newRow(op, t.Name, "commit", "ok", invoke, monoNow(), wall)
	done.Topic, done.Session = t.Topic, epoch
	if err != nil {
		done.Type, done.Error = "info", errText(err)
	} else {
		offsets := map[string]int64{}
		for partition, offset := range cl.CommittedOffsets()[t.Topic] {
			offsets[strconv.Itoa(int(partition))] = offset.Offset
		}
		detail, _ := json.Marshal(map[string]any{"offsets": offsets})
		done.Detail = string(detail)
	}
	rows.row(done)
}
