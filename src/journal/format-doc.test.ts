import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decodeRecord, encodeRecord, RecordKind } from './record.js';
import { decodeSegmentHeader, encodeSegmentHeader, SEGMENT_HEADER_SIZE } from './segment.js';

const DOC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/journal-format.md');

/** The hex dump of docs/journal-format.md §7, as bytes. */
function workedExample(): Buffer {
  const md = fs.readFileSync(DOC, 'utf8');
  const section = md.slice(md.indexOf('## 7. Worked example'));
  const dump = section.slice(section.indexOf('```') + 3, section.indexOf('```', section.indexOf('```') + 3));
  const bytes: number[] = [];
  for (const line of dump.trim().split('\n')) {
    const m = /^([0-9a-f]{8})  ((?:[0-9a-f]{2} ?)+)/.exec(line);
    expect(m, line).not.toBeNull();
    expect(parseInt(m![1]!, 16)).toBe(bytes.length);
    for (const h of m![2]!.trim().split(/\s+/)) bytes.push(parseInt(h, 16));
  }
  return Buffer.from(bytes);
}

describe('docs/journal-format.md worked example', () => {
  it('is what the encoder writes, byte for byte, and decodes to the fields the text gives', () => {
    const file = workedExample();
    expect(file.length).toBe(146);
    const h = decodeSegmentHeader(file.subarray(0, SEGMENT_HEADER_SIZE));
    expect(h).toEqual({ ok: true, header: { version: 1, firstSeq: 1n, createdNs: 1795323946889000000n } });
    expect(encodeSegmentHeader({ firstSeq: 1n, createdNs: 1795323946889000000n }).equals(file.subarray(0, 40))).toBe(true);

    const write = { kind: RecordKind.Write, flags: 0, seq: 1n, time: 1795300000000000000n, offset: 4096n, length: 8, payload: Buffer.from('rewind!\n') };
    const mark = { kind: RecordKind.Mark, flags: 0, seq: 2n, time: 1795300000000001500n, offset: 0n, length: 0, payload: Buffer.from('m1') };
    expect(encodeRecord(write).equals(file.subarray(0x28, 0x60))).toBe(true);
    expect(encodeRecord(mark).equals(file.subarray(0x60, 0x92))).toBe(true);

    const r1 = decodeRecord(file, 0x28);
    expect(r1).toMatchObject({ ok: true, size: 56, record: { ...write, crc: 0xc66d684f } });
    const r2 = decodeRecord(file, 0x60);
    expect(r2).toMatchObject({ ok: true, size: 50, record: { ...mark, crc: 0xae3536f8 } });
  });
});
