/**
 * TokenHandle: the shape of a token-broker handle, shared by the broker (which mints them) and
 * the credential watcher (which must never save one back as a refresh token).
 *
 * @since 0.1.0
 */

/**
 * Every handle starts with this, followed by 32 random bytes (base64url).
 * @category constants
 * @since 0.1.0
 */
export const HANDLE_PREFIX = "optio-handle."
