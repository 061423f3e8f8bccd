/**
 * One row of a snapshot of the replicated state: a kind (`user`, `group`, `file`...) and its fields, all text.
 * Each store writes its rows and reads them back (`exportRows`, `importRow`); the snapshot keeps them in the
 * order they were exported, which is an order they can be imported in.
 */
export type SnapshotRow = readonly string[];

/** A snapshot row this build cannot read: a kind it does not know, a wrong number of fields, a bad number. */
export class SnapshotRowError extends Error {
  override readonly name = 'SnapshotRowError';
}

/** The fields of `row` after its kind, checked against the count its kind has. */
export function rowFields(row: SnapshotRow, counts: Readonly<Record<string, number>>): readonly string[] {
  const [kind, ...fields] = row;
  const count = counts[kind ?? ''];
  if (count === undefined) throw new SnapshotRowError(`unknown snapshot row '${String(kind).slice(0, 40)}'`);
  if (fields.length !== count) {
    throw new SnapshotRowError(`a snapshot '${kind}' row has ${count} fields, not ${fields.length}`);
  }
  return fields;
}

/** A whole number written in decimal, within JavaScript's safe integers. */
export function intField(text: string, what: string): number {
  if (!/^-?\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new SnapshotRowError(`bad ${what} '${text.slice(0, 40)}' in a snapshot row`);
  }
  return Number(text);
}

/** A non-empty field. */
export function idField(text: string, what: string): string {
  if (text === '') throw new SnapshotRowError(`empty ${what} in a snapshot row`);
  return text;
}
