package nanochat4j.train.collective;

/**
 * A collective could not complete: a peer died or closed, a peer runs with another configuration or world size, or
 * ranks called different collectives. The message names the rank at fault. The {@link Collective} that threw is
 * unusable afterwards.
 */
public final class CollectiveException extends RuntimeException {
    public CollectiveException(String message) {
        super(message);
    }

    public CollectiveException(String message, Throwable cause) {
        super(message, cause);
    }
}
