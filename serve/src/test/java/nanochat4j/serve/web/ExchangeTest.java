package nanochat4j.serve.web;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import java.io.OutputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class ExchangeTest {

    /** Events flushed back to back leave in fewer sends than flushes, in order, none lost, the first at once. */
    @Test
    void flushesInQuickSuccessionAreCoalescedWithoutLosingBytes() throws Exception {
        EmbeddedChannel ch = new EmbeddedChannel();
        AtomicInteger closed = new AtomicInteger();
        var req = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.POST, "/v1/chat/completions");
        Exchange ex = new Exchange(ch, req, URI.create("/v1/chat/completions"), new byte[0], closed::incrementAndGet);
        ex.sendResponseHeaders(200, 0);
        OutputStream os = ex.getResponseBody();
        StringBuilder sent = new StringBuilder();
        for (int i = 0; i < 50; i++) {
            String event = "data: {\"i\":" + i + "}\n\n";
            sent.append(event);
            os.write(event.getBytes(StandardCharsets.UTF_8));
            os.flush();
            if (i < 2) {
                ch.runPendingTasks();
                assertTrue(ch.outboundMessages().size() >= 2 + i, "the first two events must leave at once");
            }
        }
        ex.close();
        ch.runPendingTasks();
        assertTrue(ch.readOutbound() instanceof HttpResponse);
        StringBuilder got = new StringBuilder();
        int sends = 0;
        boolean last = false;
        for (Object m; (m = ch.readOutbound()) != null; ) {
            ByteBuf b = ((HttpContent) m).content();
            if (b.readableBytes() > 0) sends++;
            got.append(b.toString(StandardCharsets.UTF_8));
            b.release();
            last |= m instanceof LastHttpContent;
        }
        assertEquals(sent.toString(), got.toString());
        assertTrue(last, "the response must end");
        assertTrue(sends < 50, sends + " sends for 50 flushes in a tight loop: not coalesced");
        assertEquals(1, closed.get());
    }

    /** A flush after a pause longer than the coalescing interval sends everything pending at once. */
    @Test
    void aFlushAfterAPauseSendsEverythingPending() throws Exception {
        EmbeddedChannel ch = new EmbeddedChannel();
        var req = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.POST, "/chat/completions");
        Exchange ex = new Exchange(ch, req, URI.create("/chat/completions"), new byte[0], () -> {});
        ex.sendResponseHeaders(200, 0);
        OutputStream os = ex.getResponseBody();
        os.write("a".getBytes(StandardCharsets.UTF_8));
        os.flush();                 // first two: sent
        os.write("b".getBytes(StandardCharsets.UTF_8));
        os.flush();
        os.write("x".getBytes(StandardCharsets.UTF_8));
        os.flush();                 // within the interval: held
        Thread.sleep(Exchange.COALESCE_NANOS / 1_000_000 + 5);
        os.write("c".getBytes(StandardCharsets.UTF_8));
        os.flush();                 // after the pause: "xc" leaves now, before the end
        ch.runPendingTasks();
        ch.readOutbound();          // headers
        StringBuilder got = new StringBuilder();
        for (Object m; (m = ch.readOutbound()) != null; ) {
            ByteBuf b = ((HttpContent) m).content();
            got.append(b.toString(StandardCharsets.UTF_8));
            b.release();
        }
        assertEquals("abxc", got.toString());
    }
}
