package nanochat4j.serve.web;

import static nanochat4j.serve.web.TestServers.JSON;
import static nanochat4j.serve.web.TestServers.TOK;
import static nanochat4j.serve.web.TestServers.chat;
import static nanochat4j.serve.web.TestServers.events;
import static nanochat4j.serve.web.TestServers.eventually;
import static nanochat4j.serve.web.TestServers.get;
import static nanochat4j.serve.web.TestServers.health;
import static nanochat4j.serve.web.TestServers.post;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.Socket;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import nanochat4j.model.tokenizer.Conversation;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The API over real HTTP on localhost: shapes, streaming, disconnects, concurrency, limits, queue and key. */
class ServeApiTest {
    static ChatServer server;

    @BeforeAll
    static void twoWorkers() throws Exception {
        server = TestServers.start(TestServers.config(), TestServers.engines(2));
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    private static JsonNode error(TestServers.Reply r) throws Exception {
        JsonNode e = r.json().get("error");
        assertNotNull(e, "OpenAI's error shape {\"error\": {...}}: " + r.body());
        assertTrue(e.has("message") && e.has("type") && e.has("param") && e.has("code"), r.body());
        return e;
    }

    @Test
    void aNonStreamingCompletionHasOpenAisShapeAndUsage() throws Exception {
        TestServers.Reply r = post(server, "/v1/chat/completions",
                chat("\"model\": \"nanochat4j-test-d4\", \"max_tokens\": 6, \"temperature\": 0", "hello world"));
        assertEquals(200, r.status(), r.body());
        JsonNode j = r.json();
        assertEquals("chat.completion", j.get("object").asText());
        assertTrue(j.get("id").asText().startsWith("chatcmpl-"), r.body());
        assertEquals("nanochat4j-test-d4", j.get("model").asText());
        JsonNode choice = j.get("choices").get(0);
        assertEquals("assistant", choice.at("/message/role").asText());
        assertTrue(choice.at("/message/content").isTextual(), r.body());
        String finish = choice.get("finish_reason").asText();
        assertTrue(finish.equals("stop") || finish.equals("length"), finish);
        int promptTokens = Generation.prompt(TOK, Conversation.of(Conversation.Message.user("hello world"))).length;
        assertEquals(promptTokens, j.at("/usage/prompt_tokens").asInt());
        int completion = j.at("/usage/completion_tokens").asInt();
        assertTrue(completion >= 1 && completion <= 6, r.body());
        assertEquals(promptTokens + completion, j.at("/usage/total_tokens").asInt());
    }

    @Test
    void theStreamCarriesTheSameReplyAsTheNonStreamingAnswerForOneSeed() throws Exception {
        String settings = "\"max_tokens\": 12, \"temperature\": 1.0, \"seed\": 1234";
        JsonNode whole = post(server, "/v1/chat/completions", chat(settings, "tell me a story")).json();
        TestServers.Reply r = post(server, "/v1/chat/completions",
                chat(settings + ", \"stream\": true, \"stream_options\": {\"include_usage\": true}", "tell me a story"));
        assertEquals(200, r.status(), r.body());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
        List<String> ev = events(r.body());
        assertEquals("[DONE]", ev.get(ev.size() - 1), "a stream ends with data: [DONE]");
        JsonNode first = JSON.readTree(ev.get(0));
        assertEquals("chat.completion.chunk", first.get("object").asText());
        assertEquals("assistant", first.at("/choices/0/delta/role").asText());
        StringBuilder content = new StringBuilder();
        String finish = null;
        JsonNode usage = null;
        for (String e : ev.subList(0, ev.size() - 1)) {
            JsonNode c = JSON.readTree(e);
            assertEquals(first.get("id").asText(), c.get("id").asText(), "one id for every chunk");
            if (c.get("choices").isEmpty()) {
                usage = c.get("usage");
                continue;
            }
            content.append(c.at("/choices/0/delta/content").asText(""));
            if (!c.at("/choices/0/finish_reason").isNull()) finish = c.at("/choices/0/finish_reason").asText();
        }
        assertEquals(whole.at("/choices/0/message/content").asText(), content.toString(), "same seed, same reply");
        assertEquals(whole.at("/choices/0/finish_reason").asText(), finish);
        assertNotNull(usage, "stream_options.include_usage adds a usage chunk");
        assertEquals(whole.get("usage"), usage);
    }

    /**
     * OpenAI's top_p is nucleus sampling after top-k: top_p 0 keeps only the most probable token, so at temperature 1
     * it gives the greedy reply; a middle value samples, the same reply for the same seed.
     */
    @Test
    void topPSamplesTheNucleus() throws Exception {
        String greedy = post(server, "/v1/chat/completions", chat("\"max_tokens\": 10, \"temperature\": 0", "hello"))
                .json().at("/choices/0/message/content").asText();
        TestServers.Reply r = post(server, "/v1/chat/completions", chat("\"max_tokens\": 10, \"temperature\": 1, \"top_p\": 0, \"seed\": 5", "hello"));
        assertEquals(200, r.status(), r.body());
        assertEquals(greedy, r.json().at("/choices/0/message/content").asText());
        String nucleus = chat("\"max_tokens\": 10, \"temperature\": 1, \"top_p\": 0.9, \"seed\": 5", "hello");
        String a = post(server, "/v1/chat/completions", nucleus).json().at("/choices/0/message/content").asText();
        assertEquals(a, post(server, "/v1/chat/completions", nucleus).json().at("/choices/0/message/content").asText());
    }

    /**
     * OpenAI's n: replies decoded together from one prefill. Greedy, every choice is the one greedy reply; sampled, the
     * stream carries per index what the JSON answer has for that seed, each choice ending on its own (a stop sequence
     * ends only the choices that write it), and usage counts every choice's tokens.
     */
    @Test
    void nChoicesAreDecodedTogetherAndEndOnTheirOwn() throws Exception {
        String greedy = post(server, "/v1/chat/completions", chat("\"max_tokens\": 10, \"temperature\": 0", "hello"))
                .json().at("/choices/0/message/content").asText();
        TestServers.Reply r = post(server, "/v1/chat/completions", chat("\"max_tokens\": 10, \"temperature\": 0, \"n\": 3", "hello"));
        assertEquals(200, r.status(), r.body());
        JsonNode three = r.json().get("choices");
        assertEquals(3, three.size(), r.body());
        for (int i = 0; i < 3; i++) {
            assertEquals(i, three.get(i).get("index").asInt());
            assertEquals(greedy, three.get(i).at("/message/content").asText(), "choice " + i);
        }
        int one = post(server, "/v1/chat/completions", chat("\"max_tokens\": 10, \"temperature\": 0", "hello")).json()
                .at("/usage/completion_tokens").asInt();
        assertEquals(3 * one, r.json().at("/usage/completion_tokens").asInt(), r.body());

        String settings = "\"max_tokens\": 16, \"temperature\": 1.0, \"seed\": 77, \"n\": 2";
        JsonNode whole = post(server, "/v1/chat/completions", chat(settings, "tell me a story")).json();
        assertEquals(2, whole.get("choices").size(), whole.toString());
        assertNotEquals(whole.at("/choices/0/message/content").asText(), whole.at("/choices/1/message/content").asText(),
                "two samples of a near-uniform model: different replies");
        TestServers.Reply st = post(server, "/v1/chat/completions",
                chat(settings + ", \"stream\": true, \"stream_options\": {\"include_usage\": true}", "tell me a story"));
        assertEquals(200, st.status(), st.body());
        List<String> ev = events(st.body());
        assertEquals("[DONE]", ev.get(ev.size() - 1));
        StringBuilder[] content = {new StringBuilder(), new StringBuilder()};
        String[] finish = new String[2];
        JsonNode usage = null;
        for (String e : ev.subList(0, ev.size() - 1)) {
            JsonNode c = JSON.readTree(e);
            if (c.get("choices").isEmpty()) usage = c.get("usage");
            for (JsonNode ch : c.get("choices")) {
                int i = ch.get("index").asInt();
                content[i].append(ch.at("/delta/content").asText(""));
                if (!ch.get("finish_reason").isNull()) finish[i] = ch.get("finish_reason").asText();
            }
        }
        for (int i = 0; i < 2; i++) {
            assertEquals(whole.at("/choices/" + i + "/message/content").asText(), content[i].toString(), "choice " + i);
            assertEquals(whole.at("/choices/" + i + "/finish_reason").asText(), finish[i], "choice " + i);
        }
        assertEquals(whole.get("usage"), usage);

        // a stop sequence taken from the middle of choice 0 ends choice 0 there ("stop"); choice 1 runs to its own end
        String c0 = whole.at("/choices/0/message/content").asText(), c1 = whole.at("/choices/1/message/content").asText();
        String stop = null;
        for (int at = 2; at + 2 <= c0.length() && stop == null; at++) {
            String cand = c0.substring(at, at + 2);
            if (!c1.contains(cand) && !c0.substring(0, at).contains(cand)) stop = cand;
        }
        org.junit.jupiter.api.Assumptions.assumeTrue(stop != null, "no two characters of choice 0 that choice 1 lacks");
        JsonNode stopped = post(server, "/v1/chat/completions",
                chat(settings + ", \"stop\": " + JSON.writeValueAsString(stop), "tell me a story")).json();
        assertEquals(c0.substring(0, c0.indexOf(stop)), stopped.at("/choices/0/message/content").asText());
        assertEquals("stop", stopped.at("/choices/0/finish_reason").asText());
        assertEquals(c1, stopped.at("/choices/1/message/content").asText());
        assertEquals(whole.at("/choices/1/finish_reason").asText(), stopped.at("/choices/1/finish_reason").asText());

        TestServers.Reply nano = post(server, "/chat/completions", chat("\"max_tokens\": 4, \"n\": 2", "hi"));
        assertEquals(400, nano.status(), nano.body());
        assertEquals("n", error(nano).get("param").asText());
    }

    @Test
    void nanochatsEndpointStreamsTokensTaggedWithTheirPartThenDone() throws Exception {
        TestServers.Reply r = post(server, "/chat/completions", chat("\"max_tokens\": 8, \"temperature\": 0.5, \"top_k\": 20", "hi"));
        assertEquals(200, r.status(), r.body());
        List<String> ev = events(r.body());
        JsonNode done = JSON.readTree(ev.get(ev.size() - 1));
        assertTrue(done.get("done").asBoolean(), r.body());
        assertTrue(done.at("/usage/completion_tokens").asInt() <= 8, r.body());
        for (String e : ev.subList(0, ev.size() - 1)) {
            JsonNode t = JSON.readTree(e);
            assertTrue(t.get("token").isTextual() && t.get("gpu").isInt(), e);
            assertTrue(List.of("text", "python", "python_output").contains(t.get("part").asText()), e);
        }
    }

    @Test
    void aClientThatDisconnectsMidStreamFreesItsWorkerAtOnce() throws Exception {
        long tokensBefore = tokens(health(server));
        long cancelledBefore = health(server).get("cancelled").asLong();
        try (Socket s = TestServers.openStream(server, "/v1/chat/completions",
                chat("\"max_tokens\": 2000, \"temperature\": 0, \"stream\": true", "go on forever"))) {
            assertTrue(TestServers.awaitFirstEvent(s).contains("200"));
            assertTrue(eventually(10, () -> health(server).get("busy_workers").asInt() == 1), "the request holds a worker while it streams");
        }
        assertFreedOnceTheClientLeft(tokensBefore, cancelledBefore);
    }

    @Test
    void aNonStreamingClientThatDisconnectsFreesItsWorkerAtOnce() throws Exception {
        long tokensBefore = tokens(health(server));
        long cancelledBefore = health(server).get("cancelled").asLong();
        try (Socket s = TestServers.openStream(server, "/v1/chat/completions",
                chat("\"max_tokens\": 2000, \"temperature\": 0", "go on forever"))) {
            // nothing comes back before the whole reply: the server can only learn from the connection that we left
            assertTrue(eventually(10, () -> health(server).get("busy_workers").asInt() == 1), "the request holds a worker while it generates");
        }
        assertFreedOnceTheClientLeft(tokensBefore, cancelledBefore);
    }

    /** After the client closed a 2000-token request: its worker comes back, the reply was cancelled early, the server still answers. */
    private void assertFreedOnceTheClientLeft(long tokensBefore, long cancelledBefore) throws Exception {
        long closed = System.nanoTime();
        assertTrue(eventually(5, () -> health(server).get("available_workers").asInt() == 2),
                "the worker must come back once the client is gone: " + health(server));
        double seconds = (System.nanoTime() - closed) / 1e9;
        JsonNode h = health(server);
        assertEquals(cancelledBefore + 1, h.get("cancelled").asLong(), "the reply was cancelled, not finished: " + h);
        long generated = tokens(h) - tokensBefore;
        assertTrue(generated < 2000, "the reply stopped early (" + generated + " of 2000 tokens, freed after " + seconds + " s)");
        assertEquals(200, post(server, "/v1/chat/completions", chat("\"max_tokens\": 2", "still there?")).status());
    }

    private static long tokens(JsonNode health) {
        long t = 0;
        for (JsonNode w : health.get("workers")) t += w.get("tokens").asLong();
        return t;
    }

    @Test
    void sixteenConcurrentClientsOnTwoWorkersAreAllAnswered() throws Exception {
        long[] servedBefore = new long[2];
        for (int i = 0; i < 2; i++) servedBefore[i] = health(server).at("/workers/" + i + "/requests").asLong();
        ExecutorService clients = Executors.newFixedThreadPool(16);
        try {
            List<Future<TestServers.Reply>> replies = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                boolean stream = i % 2 == 0;
                String body = chat("\"max_tokens\": 24, \"temperature\": 0" + (stream ? ", \"stream\": true" : ""), "client " + i);
                replies.add(clients.submit(() -> post(server, "/v1/chat/completions", body)));
            }
            for (int i = 0; i < 16; i++) {
                TestServers.Reply r = replies.get(i).get();
                assertEquals(200, r.status(), "client " + i + ": " + r.body());
                if (i % 2 == 0) assertEquals("[DONE]", events(r.body()).getLast(), r.body());
                else assertEquals("chat.completion", r.json().get("object").asText());
            }
        } finally {
            clients.shutdownNow();
        }
        JsonNode h = health(server);
        long served = 0;
        for (int i = 0; i < 2; i++) {
            long n = h.at("/workers/" + i + "/requests").asLong() - servedBefore[i];
            assertTrue(n > 0, "both workers served: " + h);
            served += n;
        }
        assertEquals(16, served, h.toString());
        assertEquals(2, h.get("available_workers").asInt());
    }

    @Test
    void malformedAndOversizedRequestsAreRefusedWithTheReason() throws Exception {
        TestServers.Reply r = post(server, "/v1/chat/completions", "{\"messages\": [");
        assertEquals(400, r.status());
        assertTrue(error(r).get("message").asText().startsWith("invalid JSON"), r.body());
        r = post(server, "/v1/chat/completions", "{\"messages\": [], \"max_tokens\": 5}");
        assertEquals(400, r.status());
        assertEquals("messages", error(r).get("param").asText());
        r = post(server, "/v1/chat/completions", "[1, 2]");
        assertEquals(400, r.status(), r.body());
        record Bad(String body, String param) {}
        for (Bad b : List.of(
                new Bad(chat("\"temperature\": 3", "hi"), "temperature"),
                new Bad(chat("\"temperature\": \"hot\"", "hi"), "temperature"),
                new Bad(chat("\"max_tokens\": 0", "hi"), "max_tokens"),
                new Bad(chat("\"max_tokens\": 100000", "hi"), "max_tokens"),
                new Bad(chat("\"top_k\": 500", "hi"), "top_k"),
                new Bad(chat("\"top_p\": 1.5", "hi"), "top_p"),
                new Bad(chat("\"top_p\": -0.1", "hi"), "top_p"),
                new Bad(chat("\"n\": 0", "hi"), "n"),
                new Bad(chat("\"n\": 17", "hi"), "n"),
                new Bad(chat("\"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]", "hi"), "stop"),
                new Bad(chat("", "hi", "hello"), "messages"),
                new Bad(chat("", "x".repeat(8001)), "messages[0].content"),
                new Bad(chat("", "a".repeat(7000), "b".repeat(7000), "c".repeat(7000), "d".repeat(7000), "e".repeat(7000)), "messages"),
                new Bad("{\"messages\": [{\"role\": \"assistant\", \"content\": \"hi\"}]}", "messages[0].role"),
                new Bad("{\"messages\": [{\"role\": \"user\", \"content\": \"\"}]}", "messages[0].content"),
                new Bad("{\"messages\": [{\"role\": \"user\", \"content\": 42}]}", "messages[0].content"))) {
            r = post(server, "/v1/chat/completions", b.body());
            assertEquals(400, r.status(), b.body() + " → " + r.body());
            assertEquals(b.param(), error(r).get("param").asText(), r.body());
        }
        r = post(server, "/v1/chat/completions", chat("", "y".repeat(2_000_000)));
        assertEquals(413, r.status());
        assertEquals("request_too_large", error(r).get("code").asText());
        r = post(server, "/v1/chat/completions", chat("\"model\": \"gpt-4o\"", "hi"));
        assertEquals(404, r.status());
        assertEquals("model_not_found", error(r).get("code").asText());
        assertEquals(405, get(server, "/v1/chat/completions").status());
        assertEquals(404, get(server, "/v2/anything").status());
        for (String path : List.of("/../pom.xml", "/%2e%2e/%2e%2e/etc/passwd", "/nanochat4j/serve/web/app.js", "/ChatServer.class")) {
            TestServers.Reply p = get(server, path);
            assertEquals(404, p.status(), path);
            assertFalse(p.body().contains("root:"), path);
        }
        HttpRequest form = HttpRequest.newBuilder(server.url().resolve("/v1/chat/completions"))
                .header("Content-Type", "text/plain").POST(HttpRequest.BodyPublishers.ofString(chat("", "hi"))).build();
        HttpResponse<String> f = TestServers.HTTP.send(form, HttpResponse.BodyHandlers.ofString());
        assertEquals(415, f.statusCode(), "a cross-site page may send text/plain without a preflight: " + f.body());
        assertEquals(2, health(server).get("available_workers").asInt(), "refused requests never take a worker");
    }

    @Test
    void onLocalhostOnlyRequestsNamingThisMachineAreServed() throws Exception {
        for (String host : List.of("evil.example", "evil.example:" + server.url().getPort(), "192.168.1.5")) {
            try (Socket s = new Socket(server.url().getHost(), server.url().getPort())) {
                s.getOutputStream().write(("GET /health HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.UTF_8));
                OpenAiClientTest.Http r = OpenAiClientTest.read(s.getInputStream());
                assertEquals(403, r.status(), host);
                assertEquals("host_not_allowed", JSON.readTree(r.body()).at("/error/code").asText());
            }
        }
        for (String host : List.of("localhost:" + server.url().getPort(), "127.0.0.1:" + server.url().getPort(), "LOCALHOST")) {
            try (Socket s = new Socket(server.url().getHost(), server.url().getPort())) {
                s.getOutputStream().write(("GET /health HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.UTF_8));
                assertEquals(200, OpenAiClientTest.read(s.getInputStream()).status(), host);
            }
        }
    }

    @Test
    void stopSequencesEndTheReplyBeforeTheMatch() throws Exception {
        String settings = "\"max_tokens\": 40, \"temperature\": 1.0, \"seed\": 99";
        String full = post(server, "/v1/chat/completions", chat(settings, "count")).json().at("/choices/0/message/content").asText();
        assertTrue(full.length() > 4, "need a reply to cut: " + full);
        String stop = full.substring(full.length() / 2, full.length() / 2 + 2);
        for (boolean stream : new boolean[] {false, true}) {
            TestServers.Reply r = post(server, "/v1/chat/completions",
                    chat(settings + ", \"stop\": " + JSON.valueToTree(stop) + (stream ? ", \"stream\": true" : ""), "count"));
            String content;
            String finish;
            if (stream) {
                StringBuilder sb = new StringBuilder();
                finish = null;
                for (String e : events(r.body())) {
                    if (e.equals("[DONE]")) continue;
                    JsonNode c = JSON.readTree(e);
                    sb.append(c.at("/choices/0/delta/content").asText(""));
                    if (!c.at("/choices/0/finish_reason").isNull()) finish = c.at("/choices/0/finish_reason").asText();
                }
                content = sb.toString();
            } else {
                content = r.json().at("/choices/0/message/content").asText();
                finish = r.json().at("/choices/0/finish_reason").asText();
            }
            assertEquals(full.substring(0, full.indexOf(stop)), content, "stream " + stream);
            assertEquals("stop", finish);
        }
    }

    @Test
    void modelsAndHealthDescribeTheServer() throws Exception {
        JsonNode m = get(server, "/v1/models").json();
        assertEquals("list", m.get("object").asText());
        assertEquals("nanochat4j-test-d4", m.at("/data/0/id").asText());
        assertEquals("model", m.at("/data/0/object").asText());
        JsonNode h = health(server);
        assertEquals("ok", h.get("status").asText());
        assertEquals(2, h.get("num_workers").asInt());
        assertEquals(2, h.get("workers").size());
    }

    @Test
    void thePageAndItsAssetsComeFromUsAlone() throws Exception {
        TestServers.Reply page = get(server, "/");
        assertEquals(200, page.status());
        assertTrue(page.headers().firstValue("Content-Type").orElse("").startsWith("text/html"));
        String csp = page.headers().firstValue("Content-Security-Policy").orElse("");
        assertTrue(csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"), csp);
        for (String asset : List.of("/", "/app.js", "/style.css", "/logo.svg")) {
            TestServers.Reply r = get(server, asset);
            assertEquals(200, r.status(), asset);
            assertFalse(r.body().contains("http://") && !asset.equals("/logo.svg") || r.body().contains("https://"),
                    asset + " must not load anything from elsewhere");
        }
        assertTrue(page.body().contains("/app.js") && page.body().contains("/style.css"));
    }

    @Test
    void aFullQueueIsAnswered429WithRetryAfter() throws Exception {
        try (ChatServer one = TestServers.start(TestServers.config().withQueueLimit(1), TestServers.engines(1))) {
            String longReply = chat("\"max_tokens\": 2000, \"temperature\": 0, \"stream\": true", "take your time");
            try (Socket running = TestServers.openStream(one, "/v1/chat/completions", longReply)) {
                TestServers.awaitFirstEvent(running);
                try (Socket waiting = TestServers.openStream(one, "/v1/chat/completions", longReply)) {
                    assertTrue(eventually(10, () -> health(one).get("queued").asInt() == 1), health(one).toString());
                    TestServers.Reply r = post(one, "/v1/chat/completions", chat("\"max_tokens\": 2", "me too"));
                    assertEquals(429, r.status(), r.body());
                    assertEquals("queue_full", error(r).get("code").asText());
                    assertTrue(Integer.parseInt(r.headers().firstValue("Retry-After").orElse("0")) >= 1, r.headers().toString());
                    assertEquals(1, health(one).get("refused").asInt());
                }
            }
            assertTrue(eventually(10, () -> health(one).get("available_workers").asInt() == 1 && health(one).get("queued").asInt() == 0),
                    "both streams' clients left: " + health(one));
            assertEquals(200, post(one, "/v1/chat/completions", chat("\"max_tokens\": 2", "now?")).status());
        }
    }

    @Test
    void repliesFitTheContextAndALongConversationIsCutFromTheLeft() throws Exception {
        List<nanochat4j.model.engine.Engine> small = List.of(new nanochat4j.model.engine.Engine(
                nanochat4j.model.gpt.GPT.create(new nanochat4j.model.gpt.GPTConfig(64, TOK.vocabSize(), 2, 2, 2, 32, "L"), 3), TOK));
        try (ChatServer s = TestServers.start(TestServers.config(), small)) {
            JsonNode j = post(s, "/v1/chat/completions", chat("\"max_tokens\": 4000, \"temperature\": 0", "hi")).json();
            int prompt = j.at("/usage/prompt_tokens").asInt();
            assertTrue(j.at("/usage/total_tokens").asInt() <= 64, "prompt and reply fit the context of 64: " + j);
            assertTrue(prompt == Generation.prompt(TOK, Conversation.of(Conversation.Message.user("hi"))).length, j.toString());
            String longText = "the quick brown fox jumps over the lazy dog ".repeat(20);
            TestServers.Reply r = post(s, "/chat/completions", chat("\"max_tokens\": 4000, \"temperature\": 0", longText));
            List<String> ev = events(r.body());
            JsonNode done = JSON.readTree(ev.getLast());
            int full = Generation.prompt(TOK, Conversation.of(Conversation.Message.user(longText))).length;
            assertEquals(48, done.at("/usage/prompt_tokens").asInt(), r.body());
            assertEquals(full - 48, done.get("truncated_prompt_tokens").asInt(), "the page is told how much was left out");
            assertTrue(done.at("/usage/completion_tokens").asInt() <= 16, r.body());
        }
    }

    @Test
    void withAnApiKeyTheApiNeedsTheBearerTokenButThePageAndHealthDoNot() throws Exception {
        try (ChatServer keyed = TestServers.start(TestServers.config("sk-test-123", null, 0), TestServers.engines(1))) {
            TestServers.Reply r = get(keyed, "/v1/models");
            assertEquals(401, r.status());
            assertEquals("invalid_api_key", error(r).get("code").asText());
            assertTrue(error(r).get("message").asText().contains("Authorization: Bearer"), r.body());
            r = post(keyed, "/v1/chat/completions", chat("\"max_tokens\": 2", "hi"), "Authorization", "Bearer sk-wrong");
            assertEquals(401, r.status());
            r = post(keyed, "/chat/completions", chat("\"max_tokens\": 2", "hi"));
            assertEquals(401, r.status(), "nanochat's endpoint is part of the API");
            assertEquals(200, post(keyed, "/v1/chat/completions", chat("\"max_tokens\": 2", "hi"), "Authorization", "Bearer sk-test-123").status());
            assertEquals(200, get(keyed, "/v1/models", "Authorization", "Bearer sk-test-123").status());
            assertEquals(200, get(keyed, "/").status());
            assertEquals(200, get(keyed, "/health").status());
        }
    }

    @Test
    void aRequestPastItsTimeoutIsEndedAndItsWorkerFreed() throws Exception {
        try (ChatServer quick = TestServers.start(TestServers.config(null, java.time.Duration.ofMillis(300), 0), TestServers.engines(1))) {
            TestServers.Reply r = post(quick, "/v1/chat/completions", chat("\"max_tokens\": 2000, \"temperature\": 0", "slow"));
            assertEquals(504, r.status(), r.body());
            assertEquals("timeout", error(r).get("code").asText());
            r = post(quick, "/v1/chat/completions", chat("\"max_tokens\": 2000, \"temperature\": 0, \"stream\": true", "slow"));
            List<String> ev = events(r.body());
            assertEquals("[DONE]", ev.getLast());
            assertEquals("timeout", JSON.readTree(ev.get(ev.size() - 2)).at("/error/code").asText(), r.body());
            JsonNode h = health(quick);
            assertEquals(2, h.get("timed_out").asInt(), h.toString());
            assertEquals(1, h.get("available_workers").asInt());
        }
    }
}
