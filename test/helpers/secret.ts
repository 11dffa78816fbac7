export const SECRET = new TextEncoder().encode('test-secret-0123456789');
