package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
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
	rows = &sink{w: bufio.NewWriterSize(io.Discard, 1<<20)}
	relayed = &relay{acks: map[string][]int{}, last: map[int32]int64{}}
	for i := 0; b.Loop(); i++ {
		send := newRow(opIDs.Add(1), "producer-3", "send", "", 0, 0, time.Now().UnixNano())
		send.Topic, send.Producer, send.Seq, send.Checksum = "k6s-20261204T190000-abcd-ceiling", "producer-3", int64(i), 3735928559
		send.ValueLen, send.IntendedNs, send.InvokeNs = 128, monoNow(), monoNow()
		send.CompleteNs, send.Type, send.Partition, send.Offset = monoNow(), "ok", int64(i%3), int64(i)
		rows.row(send)
		relayed.outcome("producer-3", i, int32(i%3), send.CompleteNs, true)
		if i%100000 == 0 {
			relayed.take()
		}
	}
}

// BenchmarkPayload is the identity payload every send carries, recorded or not (for scale).
func BenchmarkPayload(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		payload("20261204T190000-abcd", "producer-3", i, 128)
	}
}

// TestProduceTimeouts: a produce's client-side deadline (franz-go's overhead + the broker's wait) is
// the contract's request timeout, and the broker's wait stays a usable share of it.
func TestProduceTimeouts(t *testing.T) {
	for _, request := range []time.Duration{4 * time.Second, 30 * time.Second, 3001 * time.Millisecond} {
		brokerWait, overhead := produceTimeouts(request)
		if brokerWait+overhead != request || brokerWait < request/2-time.Millisecond || overhead < brokerWait {
			t.Errorf("request timeout %v: broker wait %v + overhead %v", request, brokerWait, overhead)
		}
	}
}

// TestRejoining: only a group session lost to a retriable error is the client's own business.
func TestRejoining(t *testing.T) {
	for err, want := range map[error]bool{
		&kgo.ErrGroupSession{Err: kerr.NotCoordinator}:           true,
		&kgo.ErrGroupSession{Err: kerr.GroupAuthorizationFailed}: false,
		kerr.NotCoordinator: false,
		&kgo.ErrDataLoss{Topic: "t", ResetTo: 1, ConsumedTo: 2}: false,
		errors.New("unexpected"):                                false,
	} {
		if rejoining(err) != want {
			t.Errorf("rejoining(%v) = %v, want %v", err, !want, want)
		}
	}
}

// TestConnectionRows: the hooks count every dial, the successful ones and their closes, and the
// sampler writes those totals as client-metrics rows of the task's client until it is stopped.
func TestConnectionRows(t *testing.T) {
	initClock()
	var out bytes.Buffer
	rows = &sink{w: bufio.NewWriter(&out)}
	defer func() { rows = stdout }()
	client := &task{Name: "consumer-1", ClientMetricsS: 0.01}
	counting(client)
	meta := kgo.BrokerMetadata{NodeID: 1}
	client.counter.OnBrokerConnect(meta, time.Millisecond, nil, errors.New("dial tcp: connection refused"))
	client.counter.OnBrokerConnect(meta, time.Millisecond, &net.TCPConn{}, nil)
	client.counter.OnBrokerConnect(meta, time.Millisecond, &net.TCPConn{}, nil)
	client.counter.OnBrokerDisconnect(meta, &net.TCPConn{})
	stop := sampled(client)
	time.Sleep(50 * time.Millisecond)
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
	want := `{"connection-attempts-total":3,"connection-close-total":1,"connection-creation-total":2}`
	if row.Process != "consumer-1" || row.F != "client-metrics" || row.Type != "ok" || row.Detail != want {
		t.Fatalf("got %+v", row)
	}
	quiet := &task{Name: "producer-0"}
	counting(quiet)
	if quiet.counter != nil {
		t.Fatal("a workload that samples no clients gets no hooks")
	}
}
