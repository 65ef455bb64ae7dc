package nanochat4j.serve.web;

import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;

/**
 * One request and its response on a {@link WebServer} connection, used from a handler thread: the request with its
 * whole body (cut at the size limit + 1 byte), and a response sent as headers, then body bytes on each flush (at most one
 * send per {@link #COALESCE_NANOS}), then the end at {@link #close}. Writes are handed to the connection's event loop without waiting; a write fails at once
 * when the client has closed the connection, which the event loop notices while the handler runs, without a write.
 */
final class Exchange {
    private final Channel channel;
    private final HttpRequest request;
    private final URI uri;
    private final byte[] body;
    private final boolean keepAlive;
    private final Runnable onClose;
    private final HttpHeaders responseHeaders = new DefaultHttpHeaders();
    private final Body out = new Body();
    private int status = -1;
    private boolean closed;

    Exchange(Channel channel, HttpRequest request, URI uri, byte[] body, Runnable onClose) {
        this.channel = channel;
        this.request = request;
        this.uri = uri;
        this.body = body;
        this.keepAlive = HttpUtil.isKeepAlive(request);
        this.onClose = onClose;
    }

    String getRequestMethod() {
        return request.method().name();
    }

    URI getRequestURI() {
        return uri;
    }

    /** The first value of a request header, or null. */
    String requestHeader(String name) {
        return request.headers().get(name);
    }

    /** The request body, at most the server's limit + 1 bytes of it. */
    InputStream getRequestBody() {
        return new ByteArrayInputStream(body);
    }

    HttpHeaders getResponseHeaders() {
        return responseHeaders;
    }

    /** The status sent, or -1 before {@link #sendResponseHeaders}. */
    int getResponseCode() {
        return status;
    }

    /** Whether the client closed its connection (the event loop keeps reading it while the request runs). */
    boolean clientGone() {
        return !channel.isActive();
    }

    /** Sends the status and headers; {@code length} as the JDK server's: > 0 that many bytes, 0 chunked, -1 none. */
    void sendResponseHeaders(int code, long length) throws IOException {
        if (status != -1) throw new IOException("the response headers were already sent");
        if (clientGone()) throw new IOException("the client closed the connection");
        status = code;
        HttpResponse r = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.valueOf(code), responseHeaders);
        if (length == 0) {
            HttpUtil.setTransferEncodingChunked(r, true);
        } else {
            HttpUtil.setContentLength(r, Math.max(0, length));
        }
        HttpUtil.setKeepAlive(r, keepAlive);
        channel.write(r);
    }

    /** The response body: what is written leaves at each flush (or at {@link #close}). */
    OutputStream getResponseBody() {
        return out;
    }

    /** Ends the response (closing the connection unless the client keeps it alive); the connection may read its next request. */
    void close() {
        if (closed) return;
        closed = true;
        try {
            if (status == -1 || clientGone()) {
                channel.close();
                return;
            }
            out.send();
            var f = channel.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT);
            if (!keepAlive) f.addListener(ChannelFutureListener.CLOSE);
        } finally {
            onClose.run();
        }
    }

    /**
     * A flush within this long of the previous send leaves its bytes pending for the next flush or the end. Each send
     * is a task for the event loop, which may wake it; one wake-up per token took CPU from the decode on a small
     * machine (docs/BENCHMARKS.md), while one per display frame shows the text as smoothly. The first two sends leave
     * at once (a stream's opening event and its first token, whose time to first token matters), and so does the
     * first event after a pause.
     */
    static final long COALESCE_NANOS = 16_000_000L;

    private final class Body extends OutputStream {
        private final ByteArrayOutputStream pending = new ByteArrayOutputStream();
        private int sends;
        private long lastSend;

        @Override
        public void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            if (status == -1) throw new IOException("the response headers are not sent yet");
            pending.write(b, off, len);
        }

        @Override
        public void flush() throws IOException {
            if (clientGone()) throw new IOException("the client closed the connection");
            if (pending.size() == 0) {
                channel.flush();
                return;
            }
            long now = System.nanoTime();
            if (sends >= 2 && now - lastSend < COALESCE_NANOS) return;
            sends++;
            lastSend = now;
            // one task for the event loop per send (write and flush together): each task may wake it
            channel.writeAndFlush(new DefaultHttpContent(Unpooled.wrappedBuffer(pending.toByteArray())), channel.voidPromise());
            pending.reset();
        }

        void send() {
            if (pending.size() == 0) return;
            channel.write(new DefaultHttpContent(Unpooled.wrappedBuffer(pending.toByteArray())), channel.voidPromise());
            pending.reset();
        }
    }
}
