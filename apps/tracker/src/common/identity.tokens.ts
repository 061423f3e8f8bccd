/**
 * The tracker's TLS identity (an `Identity` of `@app/tls`): its certificate is
 * what clients pin, and what it presents when it dials another tracker.
 */
export const TRACKER_IDENTITY = Symbol('TRACKER_IDENTITY');
