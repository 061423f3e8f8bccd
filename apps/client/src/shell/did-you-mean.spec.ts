import { didYouMean, editDistance } from './did-you-mean';

describe(didYouMean.name, () => {
  const commands = ['create_user', 'create_group', 'login', 'logout', 'list_groups', 'list_files', 'exit', 'quit'];

  it.each([
    ['creat_user', 'create_user'],
    ['craete_group', 'create_group'],
    ['lgoin', 'login'],
    ['list_file', 'list_files'],
    ['LIST_GROUPS', 'list_groups'],
    ['exti', 'exit'],
  ])('suggests %s -> %s', (typed, expected) => {
    expect(didYouMean(typed, commands)).toBe(expected);
  });

  it.each(['frobnicate', 'xyz', 'create', 'list_'])('suggests nothing for %s (too far, or a tie)', (typed) => {
    expect(didYouMean(typed, commands)).toBeUndefined();
  });

  it('counts a swap of neighbours as one edit', () => {
    expect(editDistance('lgoin', 'login')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
  });
});
