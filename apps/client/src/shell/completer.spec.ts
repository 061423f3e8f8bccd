import { complete } from './completer';
import { KnownNames } from './known-names.service';

describe(complete.name, () => {
  const commands = [
    { name: 'create_user', args: ['user_id', 'password'] },
    { name: 'create_group', args: ['group_id'] },
    { name: 'list_files', args: ['group_id'] },
    { name: 'download_file', args: ['group_id', 'file_name', 'destination_path'] },
    { name: 'logout', args: [] },
  ];
  const names = new KnownNames();
  names.addGroup('team');
  names.addGroup('teachers');
  names.addGroup('bobs');
  names.addFile('report.pdf');
  names.addFile('my file.pdf'); // not completable as one plain token: not kept

  it('completes a command name, with a space after a single hit', () => {
    expect(complete('lo', commands, names)).toEqual([['logout '], 'lo']);
    expect(complete('create_', commands, names)).toEqual([['create_group', 'create_user'], 'create_']);
    expect(complete('', commands, names)[0]).toHaveLength(5);
    expect(complete('zz', commands, names)).toEqual([[], 'zz']);
  });

  it('completes group names where a group_id goes and file names where a file_name goes', () => {
    expect(complete('list_files b', commands, names)).toEqual([['bobs '], 'b']);
    expect(complete('list_files tea', commands, names)).toEqual([['teachers', 'team'], 'tea']);
    expect(complete('download_file team r', commands, names)).toEqual([['report.pdf '], 'r']);
    expect(complete('download_file team ', commands, names)).toEqual([['report.pdf '], '']);
  });

  it('offers nothing for other arguments or unknown commands', () => {
    expect(complete('create_user te', commands, names)).toEqual([[], 'te']);
    expect(complete('download_file team report.pdf t', commands, names)).toEqual([[], 't']);
    expect(complete('frob te', commands, names)).toEqual([[], 'te']);
  });
});
