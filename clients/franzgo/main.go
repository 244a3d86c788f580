// Command franzgo is K6SUITE's recording franz-go client: one producer or one consumer of a workload,
// writing the suite's history rows (docs/history-format.md) as JSON lines on stdout.
//
// It takes its task as one JSON argument (see task) and stops when its standard input closes or
// says "stop". Times are CLOCK_MONOTONIC nanoseconds, the clock Python's time.monotonic_ns() reads
// on Linux, so its rows and the suite's share one time line on one machine; wall_ns is the wall
// clock. Lines carrying "event" are control messages for the suite (ready, polled), not rows.
//
// The client runs with franz-go's defaults (idempotent writes, acks=all) plus what the workload's
// contract needs: the shared request timeout, the delivery timeout, explicit partitions for
// round-robin sends, no automatic commits, and the API version caps the suite derived from the system.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
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
	Group            string  `json:"group"`
	Commit           bool    `json:"commit"`
	Lane             []int32 `json:"lane"`
	SessionTimeoutMs int     `json:"session_timeout_ms"`
	// AutoCreate: the workload produces to a topic nobody created and asks the system to create it
	// (franz-go asks only when told to; kafka-python and librdkafka producers ask by default).
	AutoCreate bool `json:"auto_create"`
}

type row map[string]any

var (
	out     = bufio.NewWriterSize(os.Stdout, 1<<20)
	outMu   sync.Mutex
	opIDs   atomic.Int64
	monoRef int64
	timeRef time.Time
)

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

func emit(r row) {
	line, _ := json.Marshal(r)
	outMu.Lock()
	out.Write(line)
	out.WriteByte('\n')
	outMu.Unlock()
}

func flushLoop(stop <-chan struct{}) {
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			outMu.Lock()
			out.Flush()
			outMu.Unlock()
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
		emit(row{"event": "not-idempotent", "why": msg})
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
	emit(row{"op_id": opIDs.Add(1), "process": "client-log", "f": "client-log", "type": "info",
		"invoke_ns": now, "complete_ns": now, "wall_ns": wall, "error": text, "detail": string(detail)})
	retried := msg == "batch in a produce request failed" && fields["max_retries_reached"] == false ||
		msg == "produce partition load error, bumping error count on first stored batch"
	if l.t.Role == "producer" && retried && fmt.Sprint(fields["topic"]) == l.t.Topic {
		partition, _ := strconv.Atoi(fmt.Sprint(fields["partition"]))
		emit(row{"op_id": opIDs.Add(1), "process": l.t.Name, "f": "retry", "type": "info",
			"invoke_ns": now, "complete_ns": now, "wall_ns": wall, "producer": l.t.Name, "topic": l.t.Topic,
			"partition": partition, "error": text})
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
		err = produce(&t, stop)
	} else {
		err = consume(&t, stop)
	}
	if err != nil {
		now := monoNow()
		emit(row{"op_id": opIDs.Add(1), "process": t.Name, "f": "connect", "type": "fail", "invoke_ns": now,
			"complete_ns": now, "wall_ns": time.Now().UnixNano(), "error": errText(err)})
	}
	close(flushStop)
	outMu.Lock()
	out.Flush()
	outMu.Unlock()
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

func produce(t *task, stop <-chan struct{}) error {
	opts := append(options(t),
		kgo.ProduceRequestTimeout(time.Duration(t.RequestTimeoutMs)*time.Millisecond),
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
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	emit(row{"event": "ready"})
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
		value, crc := payload(t.RunID, t.Name, seq, t.MessageBytes)
		record := &kgo.Record{Topic: t.Topic, Value: value}
		key := ""
		if t.Keyed {
			key = t.Name
			record.Key = []byte(key)
		} else {
			record.Partition = int32((seq + t.Index) % t.Partitions)
		}
		base := row{"op_id": opIDs.Add(1), "process": t.Name, "f": "send", "wall_ns": time.Now().UnixNano(),
			"topic": t.Topic, "key": key, "producer": t.Name, "seq": seq, "checksum": crc,
			"value_len": len(value), "intended_ns": intended}
		base["invoke_ns"] = monoNow()
		outstanding.Add(1)
		cl.Produce(context.Background(), record, func(r *kgo.Record, err error) {
			base["complete_ns"] = monoNow()
			outstanding.Add(-1)
			if err == nil {
				base["type"], base["partition"], base["offset"] = "ok", r.Partition, r.Offset
			} else {
				base["type"], base["error"] = sendOutcome(err), errText(err)
				if !t.Keyed {
					base["partition"] = r.Partition
				}
			}
			emit(base)
		})
		if outstanding.Load() > int64(t.MaxOutstanding) {
			deadline := time.Now().Add(time.Duration(t.DeliveryTimeout * float64(time.Second)))
			for outstanding.Load() > int64(t.MaxOutstanding) && time.Now().Before(deadline) && !stopped(stop) {
				time.Sleep(time.Millisecond)
			}
			if t.Rate > 0 { // due sends that passed while blocked: offered, never made
				until, wall := monoNow(), time.Now().UnixNano()
				for due := start + int64(float64(slot)*1e9/t.Rate); due < until; due = start + int64(float64(slot)*1e9/t.Rate) {
					emit(row{"op_id": opIDs.Add(1), "process": t.Name, "f": "blocked", "type": "fail",
						"invoke_ns": due, "complete_ns": until, "wall_ns": wall - (until - due), "topic": t.Topic,
						"producer": t.Name, "intended_ns": due,
						"error": fmt.Sprintf("not sent: %d sends outstanding (max_outstanding)", outstanding.Load())})
					slot++
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(t.DeliveryTimeout*float64(time.Second)))
	cl.Flush(ctx)
	cancel()
	cl.Close() // fails what is still buffered: those rows say so (info, client closed)
	return nil
}

func consume(t *task, stop <-chan struct{}) error {
	session := int64(0)
	var mu sync.Mutex
	owned := map[int32]bool{}
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
		emit(row{"op_id": opIDs.Add(1), "process": t.Name, "f": kind, "type": "ok", "invoke_ns": now,
			"complete_ns": now, "wall_ns": time.Now().UnixNano(), "topic": t.Topic, "session": session,
			"detail": string(detail)})
	}
	opts := append(options(t), kgo.FetchMaxWait(200*time.Millisecond))
	if t.Group != "" {
		opts = append(opts, kgo.ConsumerGroup(t.Group), kgo.ConsumeTopics(t.Topic), kgo.DisableAutoCommit(),
			kgo.SessionTimeout(time.Duration(t.SessionTimeoutMs)*time.Millisecond),
			kgo.HeartbeatInterval(time.Second),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { assignment("assign", a) }),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { assignment("revoke", r) }),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { assignment("revoke", r) }))
	} else {
		lane := map[int32]kgo.Offset{}
		for _, p := range t.Lane {
			lane[p] = kgo.NewOffset().AtStart()
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{t.Topic: lane}))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	if t.Group == "" {
		assignment("assign", map[string][]int32{t.Topic: t.Lane})
	}
	emit(row{"event": "ready"})
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
		var failures []string
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				failures = append(failures, fmt.Sprintf("%s[%d]: %s", topic, partition, errText(err)))
			}
		})
		records := 0
		fetches.EachRecord(func(r *kgo.Record) {
			records++
			emit(pollRow(op, invoke, complete, wall, epoch, t.Name, r))
		})
		if records == 0 && len(failures) > 0 {
			text := strings.Join(failures, "; ")
			if len(text) > 500 {
				text = text[:500]
			}
			emit(row{"op_id": op, "process": t.Name, "f": "poll", "type": "info", "invoke_ns": invoke,
				"complete_ns": complete, "wall_ns": wall, "topic": t.Topic, "session": epoch, "error": text})
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if !polled {
			polled = true
			emit(row{"event": "polled"})
		}
		if records > 0 && t.Group != "" && t.Commit {
			commit(t, cl, epoch)
		}
	}
	cl.Close()
	return nil
}

func pollRow(op, invoke, complete, wall, epoch int64, name string, r *kgo.Record) row {
	identity := row{"producer": "", "seq": -1, "checksum": -1, "corrupt": true, "record_run": ""}
	parts := strings.SplitN(string(r.Value), "|", 6)
	if len(parts) == 6 {
		seq, errSeq := strconv.Atoi(parts[3])
		crc, errCrc := strconv.ParseUint(parts[4], 16, 32)
		if errSeq == nil && errCrc == nil {
			identity = row{"producer": parts[2], "seq": seq, "checksum": crc, "record_run": parts[1],
				"corrupt": parts[0] != "k6s1" || uint64(crc32.ChecksumIEEE([]byte(parts[5]))) != crc}
		}
	}
	result := row{"op_id": op, "process": name, "f": "poll", "type": "ok", "invoke_ns": invoke,
		"complete_ns": complete, "wall_ns": wall, "topic": r.Topic, "partition": r.Partition,
		"offset": r.Offset, "key": string(r.Key), "value_len": len(r.Value), "session": epoch}
	for k, v := range identity {
		result[k] = v
	}
	return result
}

func commit(t *task, cl *kgo.Client, epoch int64) {
	op, invoke, wall := opIDs.Add(1), monoNow(), time.Now().UnixNano()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(t.RequestTimeoutMs)*time.Millisecond)
	defer cancel()
	err := cl.CommitUncommittedOffsets(ctx)
	base := row{"op_id": op, "process": t.Name, "f": "commit", "invoke_ns": invoke, "complete_ns": monoNow(),
		"wall_ns": wall, "topic": t.Topic, "session": epoch}
	if err != nil {
		base["type"], base["error"] = "info", errText(err)
	} else {
		offsets := map[string]int64{}
		for partition, offset := range cl.CommittedOffsets()[t.Topic] {
			offsets[strconv.Itoa(int(partition))] = offset.Offset
		}
		detail, _ := json.Marshal(map[string]any{"offsets": offsets})
		base["type"], base["detail"] = "ok", string(detail)
	}
	emit(base)
}
