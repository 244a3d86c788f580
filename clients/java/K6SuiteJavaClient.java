import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.CRC32;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.InvalidRecordException;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ClusterAuthorizationException;
import org.apache.kafka.common.errors.RecordBatchTooLargeException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Marker;
import org.apache.logging.log4j.core.Filter;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.apache.logging.log4j.core.config.Configuration;
import org.apache.logging.log4j.core.config.LoggerConfig;
import org.apache.logging.log4j.core.config.Property;
import org.apache.logging.log4j.core.filter.AbstractFilter;
import org.apache.logging.log4j.message.Message;

/**
 * K6SUITE's recording Java client (kafka-clients, the Kafka release's own): one producer or one consumer of a
 * workload, writing the suite's history rows (docs/history-format.md) as JSON lines on stdout, in the protocol of
 * the franz-go program (clients/franzgo): the task is one JSON argument; lines carrying "event" are control
 * messages (ready, polled); "stop" on stdin, or its end, stops the client. Times are System.nanoTime(), which
 * HotSpot reads from CLOCK_MONOTONIC on Linux, the clock of Python's time.monotonic_ns(): one time line per run.
 *
 * <p>The client runs with kafka-clients' defaults (idempotent producer, acks=all, 5 requests in flight, linger
 * 5 ms) plus what the contract needs, as the task's "options" name them (k6suite_lib/workload/javaclient.py says
 * how the request timeout maps onto them): explicit partitions for round-robin sends, no automatic commits,
 * earliest offsets. kafka-clients logs through slf4j into log4j2: its warnings become client-log rows.
 */
public final class K6SuiteJavaClient {
    static final ObjectMapper JSON = new ObjectMapper();
    static final AtomicLong OP_IDS = new AtomicLong();
    static final AtomicLong CONNECTIONS_UP = new AtomicLong(); // connections whose ApiVersions answered
    static final CountDownLatch STOP = new CountDownLatch(1);
    static BufferedWriter out;
    static String runId = "";
    static JsonNode task;

    /** One history row, every column written (docs/history-format.md, "Columns"). */
    static final class Row {
        long opId;
        String process, f, type = "";
        long invokeNs, completeNs, wallNs;
        String topic = "", key = "", producer = "", recordRun = "", error = "", detail = "";
        long partition = -1, offset = -1, seq = -1, checksum = -1, valueLen, intendedNs = -1, session;
        boolean corrupt;

        Row(long opId, String process, String f, String type, long invokeNs, long completeNs, long wallNs) {
            this.opId = opId;
            this.process = process;
            this.f = f;
            this.type = type;
            this.invokeNs = invokeNs;
            this.completeNs = completeNs;
            this.wallNs = wallNs;
        }

        String json() {
            StringBuilder b = new StringBuilder(400);
            b.append("{\"run_id\":").append(quote(runId)).append(",\"op_id\":").append(opId)
                .append(",\"process\":").append(quote(process)).append(",\"f\":").append(quote(f))
                .append(",\"type\":").append(quote(type)).append(",\"invoke_ns\":").append(invokeNs)
                .append(",\"complete_ns\":").append(completeNs).append(",\"wall_ns\":").append(wallNs)
                .append(",\"topic\":").append(quote(topic)).append(",\"partition\":").append(partition)
                .append(",\"offset\":").append(offset).append(",\"key\":").append(quote(key))
                .append(",\"producer\":").append(quote(producer)).append(",\"seq\":").append(seq)
                .append(",\"checksum\":").append(checksum).append(",\"corrupt\":").append(corrupt)
                .append(",\"record_run\":").append(quote(recordRun)).append(",\"value_len\":").append(valueLen)
                .append(",\"intended_ns\":").append(intendedNs).append(",\"session\":").append(session)
                .append(",\"error\":").append(quote(error)).append(",\"detail\":").append(quote(detail)).append('}');
            return b.toString();
        }
    }

    static String quote(String s) {
        try {
            return JSON.writeValueAsString(s);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    static long wallNow() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000_000L + now.getNano();
    }

    static synchronized void write(String line, boolean flush) {
        try {
            out.write(line);
            out.write('\n');
            if (flush) {
                out.flush();
            }
        } catch (IOException e) {
            System.exit(3); // the suite went away
        }
    }

    static void row(Row r) {
        write(r.json(), false);
    }

    /** A control line, flushed at once: the workload reads its clock when it arrives. */
    static void event(Map<String, ?> message) {
        try {
            write(JSON.writeValueAsString(message), true);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    static String cut(String text) {
        return text.length() > 500 ? text.substring(0, 500) : text;
    }

    /** The exception's class, whether kafka-clients calls it retriable, and its message. */
    static String errText(Throwable e) {
        String kind = e instanceof RetriableException ? "retriable" : "not retriable";
        return cut(e.getClass().getSimpleName() + " (" + kind + "): " + e.getMessage());
    }

    /**
     * fail only when the record certainly reached no log: refused before it was queued (synchronous: kafka-clients
     * completes a send whose metadata wait or size check failed inside send(), before it reached the accumulator),
     * refused by authorization, or rejected as too large or invalid. Anything else, a TimeoutException (the
     * delivery timeout, a request that timed out), any retriable error, a fatal idempotence error, a producer closed
     * with the record queued, is info: the record may have been written before the client gave up.
     */
    static String sendOutcome(Exception e, boolean beforeQueued) {
        if (beforeQueued || e instanceof TopicAuthorizationException || e instanceof ClusterAuthorizationException
                || e instanceof RecordTooLargeException || e instanceof RecordBatchTooLargeException
                || e instanceof InvalidRecordException) {
            return "fail";
        }
        return "info";
    }

    /**
     * The detail of a send kafka-clients completed as a success without an offset: its Sender does that for a
     * batch the broker answered DUPLICATE_SEQUENCE_NUMBER (Sender.completeBatch, 4.1.1), an error response that
     * carries no offset, so an ack-without-offset here is the client's doing, not the broker's.
     */
    static final String OFFSET_UNKNOWN = "{\"offset_unknown\":"
        + quote("kafka-clients completed the send as a success without an offset (as its Sender does for DUPLICATE_SEQUENCE_NUMBER)") + "}";

    static final class Payload {
        final byte[] value;
        final long crc;

        Payload(String producer, int seq, int size) {
            String head = "k6s1|" + runId + "|" + producer + "|" + seq;
            int bodyLen = Math.max(0, size - head.length() - 10);
            String unit = producer + ":" + seq + ":";
            String body = unit.repeat(bodyLen / 8 + 1).substring(0, bodyLen);
            CRC32 crc32 = new CRC32();
            crc32.update(body.getBytes(StandardCharsets.US_ASCII));
            crc = crc32.getValue();
            value = String.format("%s|%08x|%s", head, crc, body).getBytes(StandardCharsets.US_ASCII);
        }
    }

    // ------------------------------------------------------------------ the client's own log

    /**
     * kafka-clients' warnings and errors as client-log rows (the sender's "retrying" warning among them, from which
     * the suite writes retry rows: k6suite_lib/workload/javaclient.RetryFeed).
     */
    static final class RowAppender extends AbstractAppender {
        RowAppender() {
            super("k6suite-rows", null, null, true, Property.EMPTY_ARRAY);
        }

        @Override
        public void append(LogEvent e) {
            if (e.getLevel().intLevel() > Level.WARN.intLevel()) { // NetworkClient's "ApiVersions answered" line only
                CONNECTIONS_UP.incrementAndGet();
                return;
            }
            long now = System.nanoTime();
            long wall = wallNow();
            String message = e.getMessage().getFormattedMessage();
            Throwable thrown = e.getThrown();
            String text = cut(e.getLevel() + " " + e.getLoggerName() + ": " + message
                + (thrown != null ? " " + thrown : ""));
            Row logged = new Row(OP_IDS.incrementAndGet(), "client-log", "client-log", "info", now, now, wall);
            logged.error = text;
            logged.detail = "{\"logger\":" + quote(e.getLoggerName()) + ",\"level\":" + quote(e.getLevel().name()) + "}";
            row(logged);
        }
    }

    static final String NETWORK_CLIENT = "org.apache.kafka.clients.NetworkClient";
    // NetworkClient's DEBUG line, written once per connection, right after ApiVersions answered and the connection
    // became ready (NetworkClient.handleApiVersionsResponse, 4.1.1): "Node {} has finalized features epoch: {}, ..."
    // (Kafka's LogContext formats it before log4j2 sees it: "[Producer clientId=c] Node 1 has finalized ...")
    static final String API_VERSIONS_ANSWERED = " has finalized features epoch: ";

    /**
     * Below WARN, lets through NetworkClient's "ApiVersions answered" line only, decided on its text before any
     * event is made (a context-wide filter is asked in isEnabled): every other DEBUG or INFO line of NetworkClient,
     * one or two per request, is refused there. Their cost: Kafka's LogContext formats each (the request or
     * response's toString) before asking; no other logger leaves WARN.
     */
    static final class ApiVersionsAnswered extends AbstractFilter {
        static Result decide(String logger, Level level, String text) {
            if (level.intLevel() <= Level.WARN.intLevel() || !NETWORK_CLIENT.equals(logger) || text == null) {
                return Result.NEUTRAL;
            }
            return text.contains(API_VERSIONS_ANSWERED) ? Result.NEUTRAL : Result.DENY;
        }

        @Override
        public Result filter(org.apache.logging.log4j.core.Logger logger, Level level, Marker marker, String msg,
                Object... params) {
            return decide(logger.getName(), level, msg);
        }

        @Override
        public Result filter(org.apache.logging.log4j.core.Logger logger, Level level, Marker marker, Object msg,
                Throwable t) {
            return decide(logger.getName(), level, msg == null ? null : msg.toString());
        }

        @Override
        public Result filter(org.apache.logging.log4j.core.Logger logger, Level level, Marker marker, Message msg,
                Throwable t) {
            return decide(logger.getName(), level, msg == null ? null : msg.getFormat());
        }

        @Override
        public Result filter(LogEvent event) {
            return decide(event.getLoggerName(), event.getLevel(), event.getMessage().getFormat());
        }
    }

    /**
     * Only this appender, at WARN: log4j2's default console appender would write on stdout, among the rows. And
     * NetworkClient at DEBUG for its one "ApiVersions answered" line (ApiVersionsAnswered), which the appender
     * counts as a connection made (connectionDetail).
     */
    static void recordLogs() {
        LoggerContext context = (LoggerContext) LogManager.getContext(false);
        Configuration config = context.getConfiguration();
        LoggerConfig root = config.getRootLogger();
        for (String name : new ArrayList<>(root.getAppenders().keySet())) {
            root.removeAppender(name);
        }
        RowAppender appender = new RowAppender();
        appender.start();
        config.addAppender(appender);
        root.addAppender(appender, Level.WARN, null);
        root.setLevel(Level.WARN);
        LoggerConfig network = new LoggerConfig(NETWORK_CLIENT, Level.DEBUG, false);
        network.addAppender(appender, Level.DEBUG, null);
        config.addLogger(NETWORK_CLIENT, network);
        Filter answered = new ApiVersionsAnswered();
        answered.start();
        config.addFilter(answered);
        context.updateLoggers();
    }

    // ------------------------------------------------------------------ settings

    static Properties common() {
        Properties p = new Properties();
        List<String> brokers = new ArrayList<>();
        task.path("brokers").forEach(b -> brokers.add(b.asText()));
        p.put("bootstrap.servers", String.join(",", brokers));
        p.put("client.id", runId + "-" + task.path("name").asText());
        task.path("options").properties().forEach(o -> p.put(o.getKey(), o.getValue().asText()));
        return p;
    }

    // ------------------------------------------------------------------ client-metrics rows

    /**
     * The connections the client made, counted as kafka-python and librdkafka count them: once ApiVersions answered
     * (CONNECTIONS_UP, from NetworkClient's line), so a connection abandoned during ApiVersions is none.
     * kafka-clients' own counters are client-level: its connection-creation-total counts connections whose TCP
     * connect completed (Selector: finishConnect, before ApiVersions; kept as kafka-clients-creation-total); its
     * connection-close-total counts every channel closed, failed dials too (kept as kafka-clients-close-total). The
     * close total the checks read is the connections made no longer open: made minus connection-count (the channels
     * open now; one still connecting or in ApiVersions counts there too, so while one is, this is one low).
     */
    static String connectionDetail(Map<MetricName, ? extends Metric> metrics) {
        Map<String, Long> counts = new HashMap<>();
        for (Map.Entry<MetricName, ? extends Metric> m : metrics.entrySet()) {
            String group = m.getKey().group();
            if (group.equals("producer-metrics") || group.equals("consumer-metrics")) {
                counts.put(m.getKey().name(), Math.round(((Number) m.getValue().metricValue()).doubleValue()));
            }
        }
        Long tcp = counts.get("connection-creation-total");
        Long closed = counts.get("connection-close-total");
        Long open = counts.get("connection-count");
        if (tcp == null || closed == null || open == null) {
            throw new IllegalStateException("kafka-clients' connection metrics are missing: " + counts.keySet());
        }
        long made = CONNECTIONS_UP.get();
        Map<String, Long> detail = new TreeMap<>();
        detail.put("connection-creation-total", made);
        detail.put("connection-close-total", Math.max(0, made - open));
        detail.put("connection-count", open);
        detail.put("kafka-clients-creation-total", tcp);
        detail.put("kafka-clients-close-total", closed);
        try {
            return JSON.writeValueAsString(detail);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    static void sample(String name, Map<MetricName, ? extends Metric> metrics) {
        long now = System.nanoTime();
        Row sample = new Row(OP_IDS.incrementAndGet(), name, "client-metrics", "ok", now, now, wallNow());
        try {
            sample.detail = connectionDetail(metrics);
        } catch (RuntimeException e) {
            sample.type = "fail";
            sample.error = errText(e);
        }
        row(sample);
    }

    static long metricsIntervalNs() {
        return (long) (task.path("client_metrics_s").asDouble(0) * 1e9);
    }

    // ------------------------------------------------------------------ producer

    static void produce() throws InterruptedException {
        String name = task.path("name").asText();
        String topic = task.path("topic").asText();
        Properties p = common();
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        if (!task.path("idempotent").asBoolean(true)) {
            p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
        }
        KafkaProducer<byte[], byte[]> producer;
        try {
            producer = new KafkaProducer<>(p);
        } catch (RuntimeException e) {
            connectFailure(name, e);
            return;
        }
        event(Map.of("event", "ready"));
        long interval = metricsIntervalNs();
        Thread sampler = null;
        if (interval > 0) {
            sampler = new Thread(() -> {
                try {
                    boolean stopped = false;
                    while (!stopped) {
                        stopped = STOP.await(interval, TimeUnit.NANOSECONDS);
                        sample(name, producer.metrics());
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, "sampler");
            sampler.setDaemon(true);
            sampler.start();
        }
        int records = task.path("records").asInt(-1);
        double rate = task.path("rate").asDouble(0);
        int partitions = task.path("partitions").asInt(1);
        int index = task.path("index").asInt(0);
        boolean keyed = task.path("keyed").asBoolean(false);
        int size = task.path("message_bytes").asInt(100);
        int maxOutstanding = task.path("max_outstanding").asInt(1000);
        long deliveryNs = (long) (task.path("delivery_timeout_s").asDouble(30) * 1e9);
        AtomicLong outstanding = new AtomicLong();
        long start = System.nanoTime();
        long slot = 0;
        for (int seq = 0; (records < 0 || seq < records) && STOP.getCount() > 0; seq++) {
            long intended = -1;
            if (rate > 0) {
                intended = start + (long) (slot * 1e9 / rate);
                slot++;
                long wait = intended - System.nanoTime();
                if (wait > 0 && STOP.await(wait, TimeUnit.NANOSECONDS)) {
                    break;
                }
            }
            Payload payload = new Payload(name, seq, size);
            byte[] key = keyed ? name.getBytes(StandardCharsets.UTF_8) : null;
            Integer partition = keyed ? null : (seq + index) % partitions;
            Row send = new Row(OP_IDS.incrementAndGet(), name, "send", "", 0, 0, wallNow());
            send.topic = topic;
            send.key = keyed ? name : "";
            send.producer = name;
            send.seq = seq;
            send.checksum = payload.crc;
            send.valueLen = payload.value.length;
            send.intendedNs = intended;
            boolean[] queued = {false};
            Thread caller = Thread.currentThread();
            outstanding.incrementAndGet();
            send.invokeNs = System.nanoTime();
            try {
                producer.send(new ProducerRecord<>(topic, partition, key, payload.value), (RecordMetadata m, Exception e) -> {
                    send.completeNs = System.nanoTime();
                    if (e == null) {
                        send.type = "ok";
                        send.partition = m.partition();
                        send.offset = m.offset();
                        if (!m.hasOffset()) {
                            send.detail = OFFSET_UNKNOWN;
                        }
                    } else {
                        send.type = sendOutcome(e, !queued[0] && Thread.currentThread() == caller);
                        send.error = errText(e);
                        if (!keyed) {
                            send.partition = partition;
                        }
                    }
                    row(send);
                    outstanding.decrementAndGet();
                });
            } catch (RuntimeException e) { // thrown by send() itself: never queued
                send.completeNs = System.nanoTime();
                send.type = "fail";
                send.error = errText(e);
                row(send);
                outstanding.decrementAndGet();
            }
            queued[0] = true;
            if (outstanding.get() > maxOutstanding) {
                long deadline = System.nanoTime() + deliveryNs;
                while (outstanding.get() > maxOutstanding && System.nanoTime() < deadline && STOP.getCount() > 0) {
                    Thread.sleep(1);
                }
                if (rate > 0) { // due sends that passed while blocked: offered, never made
                    long until = System.nanoTime();
                    long wall = wallNow();
                    for (long due = start + (long) (slot * 1e9 / rate); due < until;
                            due = start + (long) (slot * 1e9 / rate)) {
                        Row blocked = new Row(OP_IDS.incrementAndGet(), name, "blocked", "fail", due, until,
                            wall - (until - due));
                        blocked.topic = topic;
                        blocked.producer = name;
                        blocked.intendedNs = due;
                        blocked.error = "not sent: " + outstanding.get() + " sends outstanding (max_outstanding)";
                        row(blocked);
                        slot++;
                    }
                }
            }
        }
        STOP.countDown(); // the sampler's last sample, while the client's metrics still exist
        if (sampler != null) {
            sampler.join(1000);
        }
        // waits for what is queued up to the delivery timeout, then fails the rest (info: closed forcefully)
        producer.close(Duration.ofNanos(deliveryNs));
        for (long deadline = System.nanoTime() + 5_000_000_000L; outstanding.get() > 0 && System.nanoTime() < deadline;) {
            Thread.sleep(1);
        }
    }

    // ------------------------------------------------------------------ consumer

    static long session;
    static final TreeSet<Integer> OWNED = new TreeSet<>();
    static final Map<Integer, Long> CONSUMED = new HashMap<>(); // partition -> next offset, for the commit

    static void assignment(String kind, Collection<TopicPartition> changed, boolean group) {
        String topic = task.path("topic").asText();
        List<Integer> partitions = new ArrayList<>();
        for (TopicPartition tp : changed) {
            if (tp.topic().equals(topic)) {
                partitions.add(tp.partition());
            }
        }
        if (kind.equals("assign")) {
            OWNED.addAll(partitions);
            session++;
            partitions = new ArrayList<>(OWNED); // an assign row lists everything held, as an eager protocol's does
        } else {
            OWNED.removeAll(partitions);
            partitions.forEach(CONSUMED::remove);
        }
        partitions.sort(null);
        long now = System.nanoTime();
        Row change = new Row(OP_IDS.incrementAndGet(), task.path("name").asText(), kind, "ok", now, now, wallNow());
        change.topic = topic;
        change.session = session;
        try {
            change.detail = JSON.writeValueAsString(Map.of("partitions", partitions, "group", group));
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        row(change);
    }

    static void consume() throws InterruptedException {
        String name = task.path("name").asText();
        String topic = task.path("topic").asText();
        String groupId = task.path("group").asText("");
        boolean group = !groupId.isEmpty();
        Properties p = common();
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "200");
        if (group) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
            // the group session only where the workload sets it (> 0); kafka-clients' defaults otherwise
            int session = task.path("session_timeout_ms").asInt(0);
            int heartbeat = task.path("heartbeat_interval_ms").asInt(0);
            if (session > 0) {
                p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, String.valueOf(session));
            }
            if (heartbeat > 0) {
                p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, String.valueOf(heartbeat));
            }
        }
        KafkaConsumer<byte[], byte[]> consumer;
        try {
            consumer = new KafkaConsumer<>(p);
        } catch (RuntimeException e) {
            connectFailure(name, e);
            return;
        }
        if (group) {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> assigned) {
                    assignment("assign", assigned, true);
                }

                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> revoked) {
                    assignment("revoke", revoked, true);
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> lost) {
                    assignment("revoke", lost, true);
                }
            });
        } else {
            List<TopicPartition> lane = new ArrayList<>();
            task.path("lane").forEach(n -> lane.add(new TopicPartition(topic, n.asInt())));
            assignment("assign", lane, false);
            consumer.assign(lane);
            consumer.seekToBeginning(lane);
        }
        event(Map.of("event", "ready"));
        boolean commit = group && task.path("commit").asBoolean(false);
        long interval = metricsIntervalNs();
        long nextSample = interval > 0 ? System.nanoTime() + interval : Long.MAX_VALUE;
        boolean polled = false;
        while (STOP.getCount() > 0) {
            long op = OP_IDS.incrementAndGet();
            long invoke = System.nanoTime();
            long wall = wallNow();
            ConsumerRecords<byte[], byte[]> records = null;
            Exception failure = null;
            try {
                records = consumer.poll(Duration.ofMillis(200));
            } catch (RuntimeException e) { // kafka-clients handles rebalances and lost connections itself
                failure = e;
            }
            long complete = System.nanoTime();
            if (failure != null) {
                Row failed = new Row(op, name, "poll", "info", invoke, complete, wall);
                failed.topic = topic;
                failed.session = session;
                failed.error = errText(failure);
                row(failed);
                STOP.await(200, TimeUnit.MILLISECONDS);
            } else {
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    row(pollRow(op, invoke, complete, wall, name, r));
                    CONSUMED.put(r.partition(), r.offset() + 1);
                }
                if (!polled) {
                    polled = true;
                    event(Map.of("event", "polled"));
                }
                if (commit && !records.isEmpty()) {
                    commit(consumer, name, topic);
                }
            }
            if (System.nanoTime() >= nextSample) {
                sample(name, consumer.metrics());
                nextSample += interval;
            }
        }
        if (interval > 0) { // the last interval's connections, as the producer's sampler takes at stop
            sample(name, consumer.metrics());
        }
        consumer.close(CloseOptions.timeout(Duration.ofMillis(task.path("request_timeout_ms").asLong(30000))));
    }

    static Row pollRow(long op, long invoke, long complete, long wall, String name, ConsumerRecord<byte[], byte[]> r) {
        Row read = new Row(op, name, "poll", "ok", invoke, complete, wall);
        read.topic = r.topic();
        read.partition = r.partition();
        read.offset = r.offset();
        read.key = r.key() == null ? "" : new String(r.key(), StandardCharsets.UTF_8);
        byte[] value = r.value() == null ? new byte[0] : r.value();
        read.valueLen = value.length;
        read.session = session;
        read.corrupt = true;
        String[] parts = new String(value, StandardCharsets.ISO_8859_1).split("\\|", 6);
        if (parts.length == 6) {
            try {
                int seq = Integer.parseInt(parts[3]);
                long crc = Long.parseLong(parts[4], 16);
                read.producer = parts[2];
                read.seq = seq;
                read.checksum = crc;
                read.recordRun = parts[1];
                CRC32 body = new CRC32();
                body.update(parts[5].getBytes(StandardCharsets.ISO_8859_1));
                read.corrupt = !parts[0].equals("k6s1") || body.getValue() != crc;
            } catch (NumberFormatException e) {
                read.corrupt = true;
            }
        }
        return read;
    }

    /** A synchronous commit of what this member read of the partitions it holds, recorded with those offsets. */
    static void commit(KafkaConsumer<byte[], byte[]> consumer, String name, String topic) {
        long op = OP_IDS.incrementAndGet();
        long invoke = System.nanoTime();
        long wall = wallNow();
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        Map<String, Long> detail = new TreeMap<>();
        CONSUMED.forEach((partition, next) -> {
            offsets.put(new TopicPartition(topic, partition), new OffsetAndMetadata(next));
            detail.put(String.valueOf(partition), next);
        });
        Row done = new Row(op, name, "commit", "ok", invoke, 0, wall);
        done.topic = topic;
        done.session = session;
        try {
            consumer.commitSync(offsets, Duration.ofMillis(task.path("request_timeout_ms").asLong(30000)));
            done.detail = JSON.writeValueAsString(Map.of("offsets", detail));
        } catch (RuntimeException | IOException e) {
            done.type = "info";
            done.error = errText(e);
        }
        done.completeNs = System.nanoTime();
        row(done);
    }

    static void connectFailure(String name, Exception e) {
        long now = System.nanoTime();
        Row failed = new Row(OP_IDS.incrementAndGet(), name, "connect", "fail", now, now, wallNow());
        failed.error = errText(e);
        row(failed);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: K6SuiteJavaClient TASK-JSON");
            System.exit(2);
        }
        out = new BufferedWriter(new OutputStreamWriter(new FileOutputStream(FileDescriptor.out), StandardCharsets.UTF_8),
            1 << 20);
        System.setOut(new PrintStream(new FileOutputStream(FileDescriptor.err), true)); // stdout carries rows only
        task = JSON.readTree(args[0]);
        runId = task.path("run_id").asText();
        recordLogs();
        Thread stdin = new Thread(() -> { // the suite says stop (or goes away)
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                for (String line = in.readLine(); line != null && !line.equals("stop"); line = in.readLine()) {
                    continue;
                }
            } catch (IOException e) {
                // the end of stdin is a stop too
            }
            STOP.countDown();
        }, "stdin");
        stdin.setDaemon(true);
        stdin.start();
        Thread flusher = new Thread(() -> {
            while (true) {
                try {
                    Thread.sleep(20);
                } catch (InterruptedException e) {
                    return;
                }
                synchronized (K6SuiteJavaClient.class) {
                    try {
                        out.flush();
                    } catch (IOException e) {
                        System.exit(3);
                    }
                }
            }
        }, "flusher");
        flusher.setDaemon(true);
        flusher.start();
        if (task.path("role").asText().equals("producer")) {
            produce();
        } else {
            consume();
        }
        synchronized (K6SuiteJavaClient.class) {
            out.flush();
        }
        System.exit(0); // kafka-clients' own threads are gone; no log4j2 shutdown hook to wait for
    }
}
