package nanochat4j.train;

import java.io.PrintStream;

/**
 * A one-line progress bar for a terminal ({@code \r}-redrawn at most 10 times a second, cleared when done).
 * Off a terminal (logs, CI) it draws nothing; callers print their own lines there.
 */
public final class ProgressBar {
    private static final int WIDTH = 30;

    private final PrintStream out;
    private final boolean enabled;
    private long lastDraw;
    private int lastLength;

    /** A bar on {@code out}, drawn only when the JVM has a terminal attached. */
    public ProgressBar(PrintStream out) {
        this(out, System.console() != null && System.console().isTerminal());
    }

    public ProgressBar(PrintStream out, boolean enabled) {
        this.out = out;
        this.enabled = enabled;
    }

    public boolean enabled() {
        return enabled;
    }

    /** Redraws "[#####-----] done/total suffix" unless the last draw was under 100 ms ago (or {@code force}). */
    public synchronized void update(long done, long total, String suffix, boolean force) {
        if (!enabled) return;
        long now = System.nanoTime();
        if (!force && now - lastDraw < 100_000_000L) return;
        lastDraw = now;
        int filled = total <= 0 ? 0 : (int) Math.min(WIDTH, WIDTH * done / total);
        String line = "[" + "#".repeat(filled) + "-".repeat(WIDTH - filled) + "] " + done + "/" + total + " " + suffix;
        out.print("\r" + line + " ".repeat(Math.max(0, lastLength - line.length())));
        out.flush();
        lastLength = line.length();
    }

    /** Clears the bar so a normal line can be printed. */
    public synchronized void clear() {
        if (!enabled || lastLength == 0) return;
        out.print("\r" + " ".repeat(lastLength) + "\r");
        out.flush();
        lastLength = 0;
    }
}
