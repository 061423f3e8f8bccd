import fc from 'fast-check';
import { Command, commandFromTokens, COMMAND_SPECS, formatCommand, parseCommand, usage } from './commands';
import { ErrorCode, ProtocolError } from './errors';

describe('parseCommand', () => {
  it.each<[string, Command]>([
    ['create_user alice pw', { kind: 'create_user', userId: 'alice', password: 'pw' }],
    ['login alice "two words"', { kind: 'login', userId: 'alice', password: 'two words' }],
    ['logout', { kind: 'logout' }],
    ['create_group g1', { kind: 'create_group', groupId: 'g1' }],
    ['join_group g1', { kind: 'join_group', groupId: 'g1' }],
    ['leave_group g1', { kind: 'leave_group', groupId: 'g1' }],
    ['list_groups', { kind: 'list_groups' }],
    ['list_requests g1', { kind: 'list_requests', groupId: 'g1' }],
    ['accept_request g1 bob', { kind: 'accept_request', groupId: 'g1', userId: 'bob' }],
    [
      'upload_file g1 /tmp/a.bin 10 ' + 'a'.repeat(40) + ' @2 127.0.0.1:7001',
      {
        kind: 'upload_file',
        groupId: 'g1',
        filePath: '/tmp/a.bin',
        fileSize: '10',
        fileHash: 'a'.repeat(40),
        chunkHashes: '@2',
        myPort: '127.0.0.1:7001',
      },
    ],
    ['list_files g1', { kind: 'list_files', groupId: 'g1' }],
    ['download_file g1 a.bin', { kind: 'download_file', groupId: 'g1', fileName: 'a.bin' }],
    [
      'download_file g1 a.bin /tmp',
      { kind: 'download_file', groupId: 'g1', fileName: 'a.bin', destinationPath: '/tmp' },
    ],
    [
      'new_seeder g1 a.bin "/tmp/my dir/a.bin" 7001',
      { kind: 'new_seeder', groupId: 'g1', fileName: 'a.bin', filePath: '/tmp/my dir/a.bin', myPort: '7001' },
    ],
    ['stop_share g1 a.bin', { kind: 'stop_share', groupId: 'g1', fileName: 'a.bin' }],
  ])('%s', (line, cmd) => {
    expect(parseCommand(line)).toEqual(cmd);
    expect(parseCommand(formatCommand(cmd))).toEqual(cmd);
  });

  it('names the usage on a wrong argument count', () => {
    expect(() => parseCommand('accept_request g1')).toThrow(
      new ProtocolError(ErrorCode.BadArguments, 'usage: accept_request <group_id> <user_id>'),
    );
    expect(usage('download_file')).toBe('download_file <group_id> <file_name> [<destination_path>]');
  });

  it('refuses unknown commands', () => {
    expect(() => parseCommand('frobnicate x')).toThrow(expect.objectContaining({ code: ErrorCode.UnknownCommand }));
    expect(() => parseCommand('toString')).toThrow(expect.objectContaining({ code: ErrorCode.UnknownCommand }));
  });

  it('round-trips every command with arbitrary argument text', () => {
    const arg = fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !/[\x00-\x08\x0a-\x1f\x7f]/.test(s));
    const names = Object.keys(COMMAND_SPECS) as (keyof typeof COMMAND_SPECS)[];
    fc.assert(
      fc.property(fc.constantFrom(...names), fc.array(arg, { minLength: 6, maxLength: 6 }), (name, values) => {
        const cmd = commandFromTokens(name, values.slice(0, COMMAND_SPECS[name].args.length));
        expect(parseCommand(formatCommand(cmd))).toEqual(cmd);
      }),
    );
  });

  it('throws nothing but ProtocolError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 100 }), (s) => {
        try {
          parseCommand(s);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
        }
      }),
    );
  });
});
