/** How long the TrackerClient waits before it counts a tracker as gone; tests shorten these. */
export const TRACKER_TIMINGS = Symbol('TRACKER_TIMINGS');

export interface TrackerTimings {
  /** No byte of a reply for this long (once the request is sent) and the tracker counts as gone. */
  readonly replyTimeoutMs: number;
  /** The same for requests whose request or reply can be megabytes: `download_file`, `upload_file ... @N`. */
  readonly largeReplyTimeoutMs: number;
  /** After the tracker in use went away, how long to keep trying the whole list before giving up. */
  readonly failoverWindowMs: number;
  /** Pause between two passes over the list during a failover. */
  readonly retryPauseMs: number;
}

export const DEFAULT_TRACKER_TIMINGS: TrackerTimings = {
  replyTimeoutMs: 10_000,
  largeReplyTimeoutMs: 60_000,
  failoverWindowMs: 4_000,
  retryPauseMs: 500,
};
