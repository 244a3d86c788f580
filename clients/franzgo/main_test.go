package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkRecordSend is what recording adds to one send in a worker: its row made, encoded and
// written to the shard's buffer (the payload, which a bare producer builds too, is not counted).
// Run: cd clients/franzgo && go test -run - -bench . -benchmem (benchmarks/harness_ceiling.py's
// franzgo-workers pay this per send; benchmarks/recording_cpu.py measures the Python recorders').
func BenchmarkRecordSend(b *testing.B) {
	initClock()
	runID = "20261204T190000-abcd"
	shard := newSink(io.Discard, newRelay())
	for i := 0; b.Loop(); i++ {
		send := newRow(opIDs.Add(1), "producer-3", "send", "", 0, 0, time.Now().UnixNano())
		send.Topic, send.Producer, send.Seq, send.Checksum = "k6s-20261204T190000-abcd-ceiling", "producer-3", int64(i), 3735928559
		send.ValueLen, send.IntendedNs, send.InvokeNs = 128, monoNow(), monoNow()
		send.CompleteNs, send.Type, send.Partition, send.Offset = monoNow(), "ok", int64(i%3), int64(i)
		shard.row(send)
		if i%100000 == 0 {
			shard.flush()
		}
	}
	shard.flush()
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestShardRowsBeforeOutcomes: rows recorded at once by several producers' promises all reach the shard, each
// producer's in the order it recorded them, and an outcome is relayed only once its row is in the file (a
// worker killed after a relay has lost none of the rows the workload heard of); the last flush leaves nothing out.
func TestShardRowsBeforeOutcomes(t *testing.T) {
	const producers, sends = 8, 2000
	var out lockedBuffer // the writer may write while the test reads
	shard := newSink(&out, newRelay())
	written := func() map[string][]int64 { // the send rows in the file, by producer, in file order
		got := map[string][]int64{}
		for line := range strings.Lines(out.String()) {
			if !strings.HasSuffix(line, "\n") { // cut where the buffer filled: the rest is not written yet
				break
			}
			var row struct {
				Producer string
				Seq      int64
			}
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				t.Fatalf("a line that is no row: %q: %v", line, err)
			}
			got[row.Producer] = append(got[row.Producer], row.Seq)
		}
		return got
	}
	var recording sync.WaitGroup
	for p := range producers {
		recording.Go(func() {
			name := fmt.Sprintf("producer-%d", p)
			for seq := range sends {
				send := newRow(int64(seq), name, "send", "ok", 1, 2, 3)
				send.Producer, send.Seq, send.Partition, send.CompleteNs = name, int64(seq), int64(seq%3), int64(seq)
				if seq%10 == 9 {
					send.Type = "info"
				}
				shard.row(send)
			}
		})
	}
	acked, done := map[string]int{}, 0
	check := func(relayed map[string]any) {
		inFile := written()
		for name, seqs := range relayed["acked"].(map[string][]int) {
			for _, seq := range seqs {
				if seq >= len(inFile[name]) {
					t.Fatalf("%s's seq %d relayed before its row was written (%d in the file)", name, seq, len(inFile[name]))
				}
			}
			acked[name] += len(seqs)
		}
		done += relayed["done"].(int)
	}
	for range 10 {
		check(shard.flush())
	}
	recording.Wait()
	check(shard.flush())
	for name, seqs := range written() {
		for i, seq := range seqs {
			if seq != int64(i) {
				t.Fatalf("%s's rows out of order or missing at %d: seq %d", name, i, seq)
			}
		}
		if len(seqs) != sends || acked[name] != sends*9/10 {
			t.Errorf("%s: %d rows, %d relayed acknowledgements, want %d and %d", name, len(seqs), acked[name], sends, sends*9/10)
		}
	}
	if done != producers*sends/10 {
		t.Errorf("%d other outcomes relayed, want %d", done, producers*sends/10)
	}
}

// BenchmarkPayload is the identity payload every send carries, recorded or not (for scale).
func BenchmarkPayload(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		payload("20261204T190000-abcd", "producer-3", i, 128)
	}
}

// notice is franz-go losing the member's session to cause at `at` (its group-manage-error hook), then the poll
// that drains the notice it injected: whether that notice is quiet.
func notice(r *rejoins, cause error, at int64) bool {
	r.lost(cause, at)
	return r.quiet(&kgo.ErrGroupSession{Err: cause})
}

// gate is a writer that lets nothing through until it is closed.
type gate chan struct{}

func (g gate) Write(p []byte) (int, error) {
	<-g
	return len(p), nil
}

// TestAnEventIsWrittenWhenItReturns: a control line (a worker's last relay, after which the process ends) is
// written out, after every row queued before it, when event returns; recording a row never waits for the write.
func TestAnEventIsWrittenWhenItReturns(t *testing.T) {
	out := make(gate)
	lines := newSink(out, nil)
	lines.row(newRow(1, "producer-0", "send", "ok", 1, 2, 3))
	returned := make(chan struct{})
	go func() {
		lines.event(map[string]string{"event": "ready"})
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("event returned before its line was written")
	case <-time.After(50 * time.Millisecond):
	}
	close(out)
	<-returned
}

// TestRejoining: a group session lost to a broken connection, a retriable error, the group dropping the member or
// another cause franz-go retries is franz-go rejoining by itself (a member's first notice); one the group refused
// for good, a connection closed before its first answer that franz-go will not retry, or franz-go's other
// verdicts on the coordinator's answers (the texts of v1.22.3's unexported errBrokerTooOld, a kbin decode error)
// is not (the unknown coordinator, which franz-go retries: TestUnknownCoordinatorIsRejoining). An error that is
// no group notice is never quiet and leaves the notices' verdicts in place.
func TestRejoining(t *testing.T) {
	for cause, want := range map[error]bool{
		kerr.NotCoordinator: true,
		io.EOF:              true,
		io.ErrUnexpectedEOF: true,
		&net.OpError{Op: "read", Err: syscall.ECONNRESET}:              true,
		&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}:            true,
		context.DeadlineExceeded:                                       true,
		errors.New(brokenConnection):                                   true,
		kerr.UnknownMemberID:                                           true,
		kerr.IllegalGeneration:                                         true,
		kerr.GroupAuthorizationFailed:                                  false,
		kerr.InvalidSessionTimeout:                                     false,
		&kgo.ErrFirstReadEOF{}:                                         false,
		errors.New("response did not contain enough data to be valid"): false,
		errors.New("broker is too old; the broker has already indicated it will not know how to handle the request"): false,
	} {
		if got := notice(newRejoins(&task{SessionTimeoutMs: 10000}), cause, 1); got != want {
			t.Errorf("notice of %v: quiet = %v, want %v", cause, got, want)
		}
	}
	r := newRejoins(&task{SessionTimeoutMs: 10000})
	r.lost(io.EOF, 1)
	for _, other := range []error{kerr.NotCoordinator, io.EOF, &kgo.ErrDataLoss{Topic: "t", ResetTo: 1, ConsumedTo: 2}, errors.New("unexpected")} {
		if r.quiet(other) {
			t.Errorf("quiet(%v): no group notice is quiet", other)
		}
	}
	if !r.quiet(&kgo.ErrGroupSession{Err: io.EOF}) || r.quiet(&kgo.ErrGroupSession{Err: io.EOF}) {
		t.Error("the loss's notice is quiet; a notice the hook never saw is not")
	}
}

// TestRejoinBounds: a member that keeps failing to rejoin surfaces (audit22 H2: a coordinator closing every
// JoinGroup, EOF forever, was as quiet as one that came back): its maxRejoinFailures-th loss since its last
// assignment, a loss twice the session timeout after the first, and once a stall that long with no loss
// at all. An assignment starts over.
func TestRejoinBounds(t *testing.T) {
	s := int64(time.Second)
	r := newRejoins(&task{SessionTimeoutMs: 10000})
	for k, want := range []bool{true, true, false, false} {
		if got := notice(r, io.EOF, 1*s+int64(k)); got != want {
			t.Errorf("notice %d: quiet = %v, want %v", k+1, got, want)
		}
	}
	r.joined()
	if !notice(r, io.EOF, 30*s) || notice(r, io.EOF, 50*s) {
		t.Error("after a join: the first notice is quiet, one 20 s after it is not")
	}
	r.joined()
	if !notice(r, io.EOF, 60*s) || r.stalled(79*s) != "" {
		t.Error("within 20 s of its first loss a member is rejoining")
	}
	if stall := r.stalled(81 * s); !strings.Contains(stall, "no group session 21.0 s after it was lost (1 notices, the last: *errors.errorString: EOF)") {
		t.Errorf("stall: %q", stall)
	}
	if r.stalled(90*s) != "" {
		t.Error("a stall is written once")
	}
	r.joined()
	if r.stalled(200*s) != "" {
		t.Error("a member that joined has no stall")
	}
	var none *rejoins
	if none.quiet(&kgo.ErrGroupSession{Err: io.EOF}) || none.stalled(1) != "" {
		t.Error("a consumer outside a group has no rejoin to follow")
	}
}

// TestConnectionRows: the hooks count every dial, the successful ones and their closes, and the
// sampler writes those totals as client-metrics rows of the task's client until it is stopped.
func TestConnectionRows(t *testing.T) {
	initClock()
	var out lockedBuffer // the sampler's rows are written while the test counts them
	written := newSink(&out, nil)
	rows = written
	defer func() { rows = stdout }()
	client := &task{Name: "consumer-1", ClientMetricsS: 0.01}
	counting(client)
	meta := kgo.BrokerMetadata{NodeID: 1}
	client.counter.OnBrokerConnect(meta, time.Millisecond, nil, errors.New("dial tcp: connection refused"))
	client.counter.OnBrokerConnect(meta, time.Millisecond, &net.TCPConn{}, nil)
	client.counter.OnBrokerConnect(meta, time.Millisecond, &net.TCPConn{}, nil)
	client.counter.OnBrokerDisconnect(meta, &net.TCPConn{})
	stop := sampled(client)
	for deadline := time.Now().Add(10 * time.Second); lineCount(written, &out) < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	stop()
	rows.flush()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("want a row per interval, got %q", out.String())
	}
	var row struct{ Process, F, Type, Detail string }
	if err := json.Unmarshal([]byte(lines[0]), &row); err != nil {
		t.Fatal(err)
	}
	want := `{"connection-attempts-total":3,"connection-close-total":1,"connection-creation-total":2,` +
		`"per-broker":{"1":[2,1,3]}}`
	if row.Process != "consumer-1" || row.F != "client-metrics" || row.Type != "ok" || row.Detail != want {
		t.Fatalf("got %+v", row)
	}
	quiet := &task{Name: "producer-0"}
	counting(quiet)
	if quiet.counter != nil {
		t.Fatal("a workload that samples no clients gets no hooks")
	}
}

// lineCount flushes the sink and counts the lines written so far.
func lineCount(s *sink, out *lockedBuffer) int {
	s.flush()
	return strings.Count(out.String(), "\n")
}

// TestPlantedPollErrors: the rows a poll writes for the errors franz-go injects into it (a fake kgo.Fetches:
// the injected errors are what a real poll returns, with no broker needed to make them; each notice follows the
// loss franz-go's group loop announced to the hook first). The rejoin notice after a coordinator's connection
// broke writes nothing (franz-go's own log line is the client-log row); a group that refuses the member writes
// a failed poll, which tests/test_clients.py's planted history shows the client-errors check counts.
func TestPlantedPollErrors(t *testing.T) {
	task := &task{Name: "consumer-0", Topic: "k6s-t"}
	injected := func(errs ...error) kgo.Fetches {
		var fetches kgo.Fetches
		for _, err := range errs {
			fetches = append(fetches, kgo.Fetch{Topics: []kgo.FetchTopic{{Partitions: []kgo.FetchPartition{{Partition: 0, Err: err}}}}})
		}
		return fetches
	}
	// lose: the member loses its session to each cause at `at`; the fetches a poll then drains (and others)
	lose := func(r *rejoins, at int64, causes []error, others ...error) kgo.Fetches {
		for _, cause := range causes {
			r.lost(cause, at)
			others = append(others, &kgo.ErrGroupSession{Err: cause})
		}
		return injected(others...)
	}
	for k, quiet := range [][]error{nil, {io.EOF}, {kerr.NotCoordinator}} {
		rejoin := newRejoins(task)
		fetches := lose(rejoin, 1, quiet, context.DeadlineExceeded)
		if rows := pollRows(task, fetches, rejoin, 1, 10, 20, 30, 2); len(rows) != 0 {
			t.Errorf("case %d, %v: wrote %+v, want nothing", k, fetches.Errors(), *rows[0])
		}
	}
	refused := newRejoins(task)
	rows := pollRows(task, lose(refused, 1, []error{io.EOF, kerr.GroupAuthorizationFailed}), refused, 1, 10, 20, 30, 2)
	if len(rows) != 1 || rows[0].F != "poll" || rows[0].Type == "ok" || rows[0].Session != 2 ||
		!strings.Contains(rows[0].Error, "GROUP_AUTHORIZATION_FAILED") || strings.Contains(rows[0].Error, "EOF") {
		t.Errorf("refused: wrote %+v, want one failed poll naming the refusal only", rows)
	}
	// audit24 L3: the same refusal and a partition's data loss drained by a poll that also returned a record: the
	// record's row and, under an op id of its own, a failed poll naming both (they were dropped)
	record := kgo.Fetch{Topics: []kgo.FetchTopic{{Topic: "k6s-t", Partitions: []kgo.FetchPartition{
		{Partition: 1, Records: []*kgo.Record{{Topic: "k6s-t", Partition: 1, Value: []byte("x")}}}}}}}
	refused = newRejoins(task)
	beside := append(lose(refused, 1, []error{kerr.GroupAuthorizationFailed},
		&kgo.ErrDataLoss{Topic: "k6s-t", Partition: 0, ConsumedTo: 9, ResetTo: 5}), record)
	rows = pollRows(task, beside, refused, 7, 10, 20, 30, 2)
	if len(rows) != 2 || rows[0].Type != "ok" || rows[0].OpID != 7 || rows[1].F != "poll" || rows[1].Type != "info" ||
		rows[1].OpID == 7 || rows[1].Offset != -1 || !strings.Contains(rows[1].Error, "GROUP_AUTHORIZATION_FAILED") ||
		!strings.Contains(rows[1].Error, "lost") {
		t.Errorf("errors beside a record: wrote %d rows %+v, want the record and one failed poll naming both", len(rows), rows)
	}
	// audit22's group that never rejoins: EOF on every JoinGroup, a loss every 0.5 s; the third is a failed poll
	s := int64(time.Second)
	grouped := *task
	grouped.SessionTimeoutMs = 10000
	rejoin := newRejoins(&grouped)
	var written []int
	for k := range 4 {
		now := 10*s + int64(k)*s/2
		if rows := pollRows(task, lose(rejoin, now, []error{io.EOF}), rejoin, 1, now, now, now, 2); len(rows) > 0 {
			written = append(written, k+1)
		}
	}
	if fmt.Sprint(written) != "[3 4]" {
		t.Errorf("notices written as failed polls: %v, want [3 4]", written)
	}
	// one loss, then a JoinGroup that never answers: an empty poll past twice the session timeout fails once
	rejoin.joined()
	pollRows(task, lose(rejoin, 40*s, []error{io.EOF}), rejoin, 1, 40*s, 40*s, 40*s, 2)
	for _, at := range []int64{59, 61, 62} {
		rows := pollRows(task, nil, rejoin, 1, at*s, at*s, at*s, 2)
		if wrote := len(rows) == 1 && strings.Contains(rows[0].Error, "no group session"); wrote != (at == 61) {
			t.Errorf("empty poll at %d s: wrote %+v", at, rows)
		}
	}
}

// TestBareSends: a bare producer's send times reach its shard as (due, acked) pairs, -1 for a send
// never acknowledged, only for the sends it made (what benchmarks/harness_ceiling.py's bare franz-go reads).
func TestBareSends(t *testing.T) {
	initClock()
	sends, err := newBareSends(&task{Name: "producer-0", Records: 4, MessageBytes: 128})
	if err != nil || len(sends.value) != 128 {
		t.Fatalf("newBareSends: %v, payload of %d bytes", err, len(sends.value))
	}
	var outstanding atomic.Int64
	outstanding.Add(2)
	sends.promise(0, 100, &outstanding)(nil, nil)
	sends.promise(1, 200, &outstanding)(nil, kgo.ErrRecordTimeout)
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := sends.write(w); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	pairs := make([]int64, out.Len()/8)
	if err := binary.Read(&out, binary.LittleEndian, pairs); err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 4 || pairs[0] != 100 || pairs[1] <= 0 || pairs[2] != 200 || pairs[3] != -1 || outstanding.Load() != 0 {
		t.Errorf("pairs %v, outstanding %d", pairs, outstanding.Load())
	}
	if _, err := newBareSends(&task{Records: -1}); err == nil {
		t.Error("a bare producer without its number of records was made")
	}
}

// TestAssignedConsumerHasNoRejoins: a consumer outside a group (assign mode) has no rejoin bookkeeping;
// its assignment once dereferenced the nil *rejoins and the program panicked at start (bf719c0).
func TestAssignedConsumerHasNoRejoins(t *testing.T) {
	var none *rejoins
	none.joined()
}

// TestGroupSessionIsFranzGosUnlessGiven (issue 17): a member's session timeout and heartbeat interval are
// franz-go's own (45 s, 3 s) when the task gives none, and the task's where it gives them.
func TestGroupSessionIsFranzGosUnlessGiven(t *testing.T) {
	for _, c := range []struct {
		session, heartbeat int
		want               [2]time.Duration
	}{{0, 0, [2]time.Duration{45 * time.Second, 3 * time.Second}}, {10000, 1000, [2]time.Duration{10 * time.Second, time.Second}}} {
		member := &task{Name: "consumer-0", Brokers: []string{"127.0.0.1:1"}, Group: "g", Topic: "t",
			SessionTimeoutMs: c.session, HeartbeatIntervalMs: c.heartbeat, RequestTimeoutMs: 5000}
		cl, err := kgo.NewClient(consumerOptions(member, newRejoins(member), func(string, map[string][]int32) {})...)
		if err != nil {
			t.Fatal(err)
		}
		got := [2]time.Duration{cl.OptValue(kgo.SessionTimeout).(time.Duration), cl.OptValue(kgo.HeartbeatInterval).(time.Duration)}
		cl.Close()
		if got != c.want {
			t.Errorf("task session %d ms, heartbeat %d ms: the client runs with %v, want %v", c.session, c.heartbeat, got, c.want)
		}
	}
}
