export const GROUP_STORE = Symbol('GROUP_STORE');
