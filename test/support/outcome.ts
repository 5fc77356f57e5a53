import { lastValueFrom, tap, type Observable } from 'rxjs';

/** What a caller gets from a reply: its values and how it ended. */
export async function outcome(reply: Observable<unknown>): Promise<{ values: unknown[]; error?: unknown }> {
  const values: unknown[] = [];
  try {
    await lastValueFrom(reply.pipe(tap((value) => values.push(value))), { defaultValue: undefined });
    return { values };
  } catch (error) {
    return { values, error };
  }
}
