export const USER_STORE = Symbol('USER_STORE');
export const PASSWORD_HASHER = Symbol('PASSWORD_HASHER');
