import { describe, expect, it } from 'vitest';
import { COMMANDS } from './rewind.js';

describe('--help', () => {
  it('names every option each command accepts, and accepts every option it names', () => {
    const undocumented = COMMANDS.flatMap((c) => Object.keys(c.options ?? {}).filter((k) => !new RegExp(`--${k}(?![\\w-])`).test(c.usage)).map((k) => `${c.name} --${k}`));
    expect(undocumented).toEqual([]);
    // The synopsis (up to the first blank line) and the option lines; prose may name other commands' flags.
    const own = (usage: string) => [usage.split('\n\n')[0]!, ...usage.split('\n').filter((l) => l.startsWith('--'))].join('\n');
    const unaccepted = COMMANDS.flatMap((c) => [...new Set([...own(c.usage).matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1]!))].filter((f) => !(f in (c.options ?? {}))).map((f) => `${c.name} --${f}`));
    expect(unaccepted).toEqual([]);
    expect(COMMANDS.length).toBeGreaterThanOrEqual(11);
  });
});
