package nanochat4j.serve.web;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The HTTP/1.1 server under {@link ChatServer}, on Netty: one event-loop thread reads every connection all the time —
 * so a client that closes its connection is seen while its request is still being answered, which the JDK's own
 * server (it reads a connection only between requests) cannot see until it writes. Each complete request (body
 * included, kept up to {@code maxBody} + 1 bytes) goes to {@code executor} as an {@link Exchange}; the requests of one
 * connection are answered one after the other. A client gets {@code requestTime} to send a request, from its
 * connection or its previous response on (a client that trickles bytes would otherwise hold the connection forever).
 */
final class WebServer implements AutoCloseable {
    private final EventLoopGroup loop = new MultiThreadIoEventLoopGroup(1, new DefaultThreadFactory("serve-io", true),
            NioIoHandler.newFactory());
    private final Channel server;
    private final int maxBody;
    private final Duration requestTime;
    private final Executor executor;
    private final Consumer<Exchange> handler;

    /** Binds {@code host:port} (accepting nothing before {@link #start}). */
    WebServer(String host, int port, int backlog, int maxBody, Duration requestTime, Executor executor, Consumer<Exchange> handler)
            throws IOException {
        this.maxBody = maxBody;
        this.requestTime = requestTime;
        this.executor = executor;
        this.handler = handler;
        ServerBootstrap b = new ServerBootstrap().group(loop).channel(NioServerSocketChannel.class)
                .option(ChannelOption.SO_BACKLOG, backlog)
                .option(ChannelOption.AUTO_READ, false)
                .childOption(ChannelOption.TCP_NODELAY, true)   // a token's event leaves at once, not after the last one's ACK
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(new HttpServerCodec(), new Connection());
                    }
                });
        try {
            server = b.bind(host, port).syncUninterruptibly().channel();
        } catch (RuntimeException e) {
            loop.shutdownGracefully(0, 0, TimeUnit.SECONDS);
            throw new IOException(e.getMessage(), e);
        }
    }

    void start() {
        server.config().setAutoRead(true);
    }

    InetSocketAddress address() {
        return (InetSocketAddress) server.localAddress();
    }

    @Override
    public void close() {
        server.close().syncUninterruptibly();
        loop.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    /** One connection's requests, on the event loop. */
    private final class Connection extends ChannelInboundHandlerAdapter {
        private HttpRequest request;
        private ByteArrayOutputStream body;
        /** Complete requests waiting for the one being answered (HTTP/1.1 pipelining answers in order). */
        private final ArrayDeque<Exchange> waiting = new ArrayDeque<>();
        private boolean answering;
        private ScheduledFuture<?> deadline;

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            armDeadline(ctx);
            ctx.fireChannelActive();
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            try {
                if (msg instanceof HttpRequest r) {
                    if (r.decoderResult().isFailure()) {
                        refuse(ctx, HttpResponseStatus.BAD_REQUEST);
                        return;
                    }
                    request = r;
                    body = new ByteArrayOutputStream();
                    if (HttpUtil.is100ContinueExpected(r)) {
                        ctx.writeAndFlush(new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.CONTINUE));
                    }
                }
                if (msg instanceof HttpContent c && request != null) {
                    ByteBuf data = c.content();
                    int keep = Math.min(data.readableBytes(), maxBody + 1 - body.size());
                    if (keep > 0) {
                        byte[] bytes = new byte[keep];
                        data.readBytes(bytes);
                        body.writeBytes(bytes);
                    }
                    if (c.decoderResult().isFailure()) {
                        refuse(ctx, HttpResponseStatus.BAD_REQUEST);
                        return;
                    }
                    if (msg instanceof LastHttpContent) complete(ctx);
                }
            } finally {
                ReferenceCountUtil.release(msg);
            }
        }

        private void complete(ChannelHandlerContext ctx) {
            HttpRequest r = request;
            request = null;
            if (deadline != null) deadline.cancel(false);
            URI uri;
            try {
                uri = new URI(r.uri());
            } catch (Exception e) {
                refuse(ctx, HttpResponseStatus.BAD_REQUEST);
                return;
            }
            waiting.add(new Exchange(ctx.channel(), r, uri, body.toByteArray(), () -> ctx.executor().execute(() -> answered(ctx))));
            body = null;
            next(ctx);
        }

        private void next(ChannelHandlerContext ctx) {
            if (answering || waiting.isEmpty()) return;
            Exchange ex = waiting.poll();
            answering = true;
            try {
                executor.execute(() -> handler.accept(ex));
            } catch (RejectedExecutionException e) {
                ctx.close();   // more connections at once than handler threads and their queue
            }
        }

        private void answered(ChannelHandlerContext ctx) {
            answering = false;
            if (waiting.isEmpty() && request == null) armDeadline(ctx);
            next(ctx);
        }

        private void armDeadline(ChannelHandlerContext ctx) {
            if (deadline != null) deadline.cancel(false);
            deadline = ctx.executor().schedule(() -> {
                if (!answering && waiting.isEmpty()) ctx.close();
            }, requestTime.toMillis(), TimeUnit.MILLISECONDS);
        }

        private void refuse(ChannelHandlerContext ctx, HttpResponseStatus status) {
            request = null;
            var r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status);
            HttpUtil.setContentLength(r, 0);
            ctx.writeAndFlush(r).addListener(ChannelFutureListener.CLOSE);
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            if (deadline != null) deadline.cancel(false);
            ctx.fireChannelInactive();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();   // a reset connection, a malformed request: nothing to answer
        }
    }
}
