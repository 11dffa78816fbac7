// Atomic file replacement: write a temp file in the target's directory, fsync it, rename it over
// the target, fsync the directory. A reader sees the old file or the complete new one, never a
// partial one, also across a crash (the temp name starts with '.' and ends in '.tmp', so loaders
// that list a directory skip leftovers). A failed write removes its temp file.
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Temp files written here match this; directory listings should skip them. */
export const TEMP_FILE = /^\..*\.tmp$/;

/** Writes through `write(fh)` into a temp file, then atomically replaces `path` with it. */
export async function writeFileAtomic(path: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx', 0o644);
    await write(fh);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (e) {
    if (fh) await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dir);
}

/** Writes a whole string or byte array atomically. */
export async function writeBytesAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  await writeFileAtomic(path, (fh) => writeFully(fh, bytes, 0));
}

/** Writes every byte of `bytes` at `position`, in bounded chunks (a write may be partial). */
export async function writeFully(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  const CHUNK = 1 << 24;
  let done = 0;
  while (done < bytes.length) {
    const len = Math.min(CHUNK, bytes.length - done);
    const { bytesWritten } = await fh.write(bytes, done, len, position + done);
    if (bytesWritten <= 0) throw new Error(`write made no progress at byte ${position + done}`);
    done += bytesWritten;
  }
}

/** fsync a directory so a rename in it survives a crash. Not every platform can; that is fine. */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw e;
  } finally {
    await fh?.close().catch(() => {});
  }
}
