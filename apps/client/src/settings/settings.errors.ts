/** A setting name or value the client does not accept; its message says what is accepted. Nothing was changed. */
export class InvalidSettingError extends Error {
  override readonly name = 'InvalidSettingError';
}
