export const FILE_STORE = Symbol('FILE_STORE');
