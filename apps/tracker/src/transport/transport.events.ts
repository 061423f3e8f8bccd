/** Events the transport raises itself; no line from the wire can name them. */
export const TransportEvent = {
  /** A connection closed, for whatever reason. Payload: none; context: its PeerContext. */
  PeerClosed: '$peer_closed',
} as const;
