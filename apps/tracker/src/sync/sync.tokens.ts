export const OPLOG_STORE = Symbol('OPLOG_STORE');
/** The network's shared secret, as bytes: trackers prove they hold it before any sync line is accepted. */
export const CLUSTER_KEY = Symbol('CLUSTER_KEY');
