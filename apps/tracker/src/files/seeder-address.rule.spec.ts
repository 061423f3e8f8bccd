import { ErrorCode, HostPort, ProtocolError } from '@app/protocol';
import { trackerConfig } from '../testing/sync-testing';
import { TrackerAddressAsSeederError } from './files.errors';
import { isTrackerAddress, SeederAddressRule, seederAddress } from './seeder-address.rule';

describe(seederAddress.name, () => {
  it.each([
    ['7001', '127.0.0.1:40000', '127.0.0.1', 7001],
    ['7001', '::ffff:10.1.2.3:40000', '10.1.2.3', 7001],
    ['7001', '::1:40000', '::1', 7001],
    ['7001', '[fe80::1]:40000', 'fe80::1', 7001],
    ['65535', '127.0.0.1:40000', '127.0.0.1', 65535],
    ['1', '127.0.0.1:40000', '127.0.0.1', 1],
  ])('reads %j from a connection at %s as %s:%d', (myPort, remote, host, port) => {
    expect(seederAddress(myPort, remote)).toEqual({ host, port });
  });

  it.each([
    ['10.0.0.5:8000', '127.0.0.1:40000', '127.0.0.1', 8000],
    ['peer.example:65535', '127.0.0.1:40000', '127.0.0.1', 65535],
    ['[::1]:8000', '10.0.0.1:40000', '10.0.0.1', 8000],
    ['0.0.0.0:8000', '192.168.0.7:40000', '192.168.0.7', 8000],
    ['127.0.0.1:6001', '::ffff:127.0.0.2:40000', '127.0.0.2', 6001],
  ])('takes only the port of %j: a connection at %s serves on %s:%d', (myPort, remote, host, port) => {
    expect(seederAddress(myPort, remote)).toEqual({ host, port });
  });

  it.each([
    '0',
    '65536',
    '99999',
    'port',
    '',
    '1.2.3.4:',
    ':7001',
    '1.2.3.4:0',
    '1.2.3.4:65536',
    '1.2.3.4:7001:1',
    '-1',
  ])('refuses my_port %j with BAD_ARGUMENTS', (myPort) => {
    let thrown: unknown;
    try {
      seederAddress(myPort, '127.0.0.1:40000');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ProtocolError);
    expect((thrown as ProtocolError).code).toBe(ErrorCode.BadArguments);
  });
});

describe(isTrackerAddress.name, () => {
  const trackers: HostPort[] = [
    { host: '127.0.0.1', port: 6001 },
    { host: '0.0.0.0', port: 6002 },
    { host: 'FE80::1', port: 6003 },
  ];

  it.each<[HostPort, boolean]>([
    [{ host: '127.0.0.1', port: 6001 }, true],
    [{ host: '127.0.0.2', port: 6001 }, false],
    [{ host: '127.0.0.1', port: 6002 }, true],
    [{ host: '10.1.1.1', port: 6002 }, true],
    [{ host: 'fe80::1', port: 6003 }, true],
    [{ host: '127.0.0.1', port: 7001 }, false],
  ])('%j: %s', (address, expected) => {
    expect(isTrackerAddress(address, trackers)).toBe(expected);
  });
});

describe(SeederAddressRule.name, () => {
  const rule = new SeederAddressRule(
    trackerConfig({
      trackers: [
        { host: '127.0.0.1', port: 6001 },
        { host: '127.0.0.1', port: 6002 },
      ],
      peerAddresses: new Map([[2, { host: '10.0.0.2', port: 16002 }]]),
    }),
  );

  it('lists a seeder at its connection’s host and its own port', () => {
    expect(rule.resolve('127.0.0.9:7001', '127.0.0.1:50000')).toEqual({ host: '127.0.0.1', port: 7001 });
  });

  it.each([
    ['6001', '127.0.0.1:50000'],
    ['127.0.0.1:6002', '127.0.0.1:50000'],
    ['10.0.0.2:16002', '10.0.0.2:50000'],
    ['8.8.8.8:6001', '::ffff:127.0.0.1:50000'],
  ])('never lists a tracker of the network: my_port %j from %s', (myPort, remote) => {
    expect(() => rule.resolve(myPort, remote)).toThrow(TrackerAddressAsSeederError);
  });
});
