/**
 * The client's TLS identity (an `Identity` of `@app/tls`, kept in its data
 * directory): presented to trackers, which hand its fingerprint to
 * downloaders, and served by the chunk server after `STARTTLS`.
 */
export const CLIENT_IDENTITY = Symbol('CLIENT_IDENTITY');
