import { UPLOAD_RATE_WINDOW_MS, UploadRate } from './upload-rate';

describe(UploadRate.name, () => {
  let server: { uploadedBytes: number };
  let rate: UploadRate;

  beforeEach(() => {
    server = { uploadedBytes: 0 };
    rate = new UploadRate(server);
  });

  it('is 0 with no time passed or nothing sent', () => {
    expect(rate.bytesPerSecond(1_000)).toBe(0);
    rate.sample(2_000);
    expect(rate.bytesPerSecond(3_000)).toBe(0);
  });

  it('divides the bytes sent over the window by the time they took', () => {
    rate.sample(0);
    server.uploadedBytes = 1_000;
    rate.sample(1_000);
    server.uploadedBytes = 3_000;
    expect(rate.bytesPerSecond(2_000)).toBe(1_500);
  });

  it('forgets what was sent before the window', () => {
    rate.sample(0);
    server.uploadedBytes = 1_000_000; // a burst long ago
    for (let t = 1_000; t <= 10_000; t += 1_000) rate.sample(t);
    server.uploadedBytes += 4_000;
    // the oldest sample kept is the one at the window's edge
    expect(rate.bytesPerSecond(11_000)).toBe(4_000 / (UPLOAD_RATE_WINDOW_MS / 1000));
  });

  it('samples on its own once started, and stops when the module goes', () => {
    jest.useFakeTimers();
    try {
      rate.onModuleInit();
      server.uploadedBytes = 2_048;
      jest.advanceTimersByTime(2_000);
      expect(rate.bytesPerSecond()).toBeCloseTo(1_024, 0);
      rate.onModuleDestroy();
      expect(jest.getTimerCount()).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });
});
