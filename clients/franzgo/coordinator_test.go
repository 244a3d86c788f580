package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// staleMetadataBroker is a fake broker (a listener answering with kmsg) whose FindCoordinator names node 4
// while its Metadata lists node 0 only: what a client meets when the metadata it loads lags a coordinator that
// moved to a broker just back from a restart (audit23 L2). A fake only because no real Kafka gives that
// answer on demand; everything on the client's side is franz-go v1.22.3 itself.
func staleMetadataBroker(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	host, portText, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(portText)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go answer(conn, host, int32(port))
		}
	}()
	return ln.Addr().String()
}

// answer serves one connection's requests (non-flexible versions only: the client is capped at Kafka 2.3's).
func answer(conn net.Conn, host string, port int32) {
	defer conn.Close()
	in := bufio.NewReader(conn)
	for {
		var size int32
		if binary.Read(in, binary.BigEndian, &size) != nil {
			return
		}
		frame := make([]byte, size)
		if _, err := io.ReadFull(in, frame); err != nil {
			return
		}
		key, version := int16(binary.BigEndian.Uint16(frame)), int16(binary.BigEndian.Uint16(frame[2:]))
		correlation := frame[4:8]
		var resp kmsg.Response
		switch req := kmsg.RequestForKey(key); req.(type) {
		case *kmsg.ApiVersionsRequest:
			versions := kmsg.NewPtrApiVersionsResponse()
			kversion.V2_3_0().EachMaxKeyVersion(func(k, v int16) {
				versions.ApiKeys = append(versions.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MaxVersion: v})
			})
			resp = versions
		case *kmsg.MetadataRequest:
			metadata := kmsg.NewPtrMetadataResponse()
			metadata.Brokers = []kmsg.MetadataResponseBroker{{NodeID: 0, Host: host, Port: port}}
			metadata.Topics = []kmsg.MetadataResponseTopic{{Topic: kmsg.StringPtr("t"), Partitions: []kmsg.MetadataResponseTopicPartition{
				{Partition: 0, Leader: 0, Replicas: []int32{0}, ISR: []int32{0}}}}}
			resp = metadata
		case *kmsg.FindCoordinatorRequest:
			coordinator := kmsg.NewPtrFindCoordinatorResponse()
			coordinator.NodeID, coordinator.Host, coordinator.Port = 4, host, port
			resp = coordinator
		default:
			return
		}
		resp.SetVersion(version)
		body := append(append([]byte{}, correlation...), resp.AppendTo(nil)...)
		if binary.Write(conn, binary.BigEndian, int32(len(body))) != nil || binary.Write(conn, binary.BigEndian, body) != nil {
			return
		}
	}
}

// TestUnknownCoordinatorIsRejoining (audit23 L2): franz-go's notice for a coordinator its metadata does not list
// (v1.22.3's unexported errUnknownCoordinator, from a real client and a fake broker) is a cause franz-go itself
// retries (isRetryableBrokerErr: "Same thought for a non-existing coordinator"; the manage loop rejoins after
// it, reloading metadata twice per coordinator lookup), so it counts within the rejoin bounds like a broken
// connection: quiet at first, a failed poll once the bounds are passed (a coordinator never listed, OBS-02).
// The suite's consumer options on the real client also show the hook installed and the order rejoins relies on:
// the hook saw the loss before the poll drained the notice.
func TestUnknownCoordinatorIsRejoining(t *testing.T) {
	initClock()
	rows = newSink(io.Discard, nil) // franz-go's log lines, as client-log rows
	defer func() { rows = stdout }()
	member := &task{Name: "consumer-0", Brokers: []string{staleMetadataBroker(t)}, Group: "g", Topic: "t",
		SessionTimeoutMs: 10000, RequestTimeoutMs: 5000}
	rejoin := newRejoins(member)
	opts := append(consumerOptions(member, rejoin, func(string, map[string][]int32) {}), // the suite's own consumer
		kgo.MaxVersions(kversion.V2_3_0()), kgo.RetryTimeout(200*time.Millisecond))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var notice *kgo.ErrGroupSession
	for notice == nil && ctx.Err() == nil {
		cl.PollFetches(ctx).EachError(func(_ string, _ int32, err error) { errors.As(err, &notice) })
	}
	if notice == nil || !strings.Contains(notice.Err.Error(), "has broker coordinator 4, but did not reply with that broker in the broker list") {
		t.Fatalf("no unknown-coordinator notice within 20 s: %v", notice)
	}
	if !transient(notice.Err) {
		t.Errorf("transient(%q) = false: franz-go retries it and rejoins", errText(notice.Err))
	}
	if !rejoin.quiet(notice) {
		t.Error("the first unknown-coordinator notice, announced to the hook, is not quiet")
	}
}

// TestNoticeDrainedAfterTheRejoin (audit23 L1): franz-go calls its group-manage-error hook, then injects the
// notice, then backs off and joins again (kgo/consumer_group.go manageFailWait, manage); a poll loop held up
// past that join (its rows blocked on a full pipe) drains the notice after OnPartitionsAssigned. The member has
// its session: no failed poll then or 20 s later. Before, the drained notice started a streak that nothing
// ended, and an empty poll 21 s later wrote "no group session". A stall the member is still in is written
// (once) only by a poll without records: before, a poll with records marked it written and dropped its text.
func TestNoticeDrainedAfterTheRejoin(t *testing.T) {
	initClock()
	s := int64(time.Second)
	task := &task{Name: "consumer-0", Topic: "k6s-t", SessionTimeoutMs: 10000}
	notice := kgo.Fetches{kgo.Fetch{Topics: []kgo.FetchTopic{{Partitions: []kgo.FetchPartition{{Err: &kgo.ErrGroupSession{Err: io.EOF}}}}}}}
	rejoin := newRejoins(task)
	at := monoNow()
	hook, ok := any(rejoin).(kgo.HookGroupManageError)
	if !ok {
		t.Fatal("rejoins is no kgo.HookGroupManageError: franz-go would never tell it of a loss")
	}
	hook.OnGroupManageError(io.EOF)
	rejoin.joined()
	for _, poll := range []struct {
		fetches kgo.Fetches
		at      int64
	}{{notice, at + 2*s}, {nil, at + 23*s}, {nil, at + 40*s}} {
		if rows := pollRows(task, poll.fetches, rejoin, 1, poll.at, poll.at, poll.at, 2); len(rows) != 0 {
			t.Errorf("poll %.0f s after the loss wrote %+v", float64(poll.at-at)/1e9, *rows[0])
		}
	}
	stuck := newRejoins(task)
	stuck.lost(io.EOF, at)
	record := kgo.Fetches{kgo.Fetch{Topics: []kgo.FetchTopic{{Topic: "k6s-t", Partitions: []kgo.FetchPartition{
		{Records: []*kgo.Record{{Topic: "k6s-t", Value: []byte("x")}}}}}}}}
	if rows := pollRows(task, record, stuck, 1, at+21*s, at+21*s, at+21*s, 2); len(rows) != 1 || rows[0].Type != "ok" {
		t.Errorf("a poll with a record wrote %+v", rows)
	}
	if rows := pollRows(task, nil, stuck, 1, at+22*s, at+22*s, at+22*s, 2); len(rows) != 1 ||
		!strings.Contains(rows[0].Error, "no group session 22.0 s after it was lost") {
		t.Errorf("the stall after a poll with records: wrote %+v", rows)
	}
}
