/**
 * Byte-exact coverage set used by restore and diff when walking the log backwards from a
 * point: the first (newest) entry to touch a byte owns it, older entries only fill what is
 * still uncovered. Writes are NOT block aligned (ext4 under 512 MiB uses 1 KiB blocks,
 * clients write at any byte), so coverage is kept as intervals, not a block bitmap.
 *
 * The volume is cut into 1 MiB pages, each with its own short sorted piece list. A single
 * sorted array for the whole volume made an insert O(pieces) (a memmove of up to 256k
 * entries for a 1 GiB volume of 4 KiB writes); per page it is O(pieces in that page).
 */
export const COVERAGE_PAGE = 1 << 20;

/** A covered byte range [start, end) owned by `src` (an entry index, or a negative tag). */
export interface Piece {
  start: number;
  end: number;
  src: number;
}

interface Page {
  pieces: Piece[];
  covered: number;
}

export class Coverage {
  private readonly pages = new Map<number, Page>();
  private coveredTotal = 0;

  constructor(readonly size: number) {}

  /** True once every byte of the volume is owned; restore then stops walking. */
  get full(): boolean {
    return this.coveredTotal >= this.size;
  }

  get covered(): number {
    return this.coveredTotal;
  }

  /** Claim the uncovered parts of [start, end) for `src`; returns the bytes newly claimed. */
  claim(start: number, end: number, src: number): number {
    if (end > this.size) end = this.size;
    let added = 0;
    let pos = start;
    while (pos < end) {
      const pno = Math.floor(pos / COVERAGE_PAGE);
      const pageEnd = Math.min((pno + 1) * COVERAGE_PAGE, this.size);
      const segEnd = Math.min(end, pageEnd);
      let page = this.pages.get(pno);
      if (!page) {
        page = { pieces: [], covered: 0 };
        this.pages.set(pno, page);
      }
      if (page.covered < pageEnd - pno * COVERAGE_PAGE) added += claimInPage(page, pos, segEnd, src);
      pos = segEnd;
    }
    this.coveredTotal += added;
    return added;
  }

  /** All owned pieces in ascending order (pages are visited in order, pieces are sorted). */
  *pieces(): Generator<Piece> {
    const keys = [...this.pages.keys()].sort((a, b) => a - b);
    for (const k of keys) yield* this.pages.get(k)!.pieces;
  }

  /** Owned pieces plus the gaps between them ({src: GAP}) over [0, size), ascending. */
  *walk(): Generator<Piece> {
    let pos = 0;
    for (const p of this.pieces()) {
      if (p.start > pos) yield { start: pos, end: p.start, src: GAP };
      yield p;
      pos = p.end;
    }
    if (pos < this.size) yield { start: pos, end: this.size, src: GAP };
  }
}

/** Tag for bytes no entry owns (restore fills them from the checkpoint). */
export const GAP = -1;

/** First index whose piece ends after `pos`. */
function firstEndingAfter(pieces: Piece[], pos: number): number {
  let lo = 0;
  let hi = pieces.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (pieces[mid]!.end <= pos) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function claimInPage(page: Page, start: number, end: number, src: number): number {
  const pieces = page.pieces;
  const first = firstEndingAfter(pieces, start);
  const fresh: Piece[] = [];
  let pos = start;
  let i = first;
  while (pos < end && i < pieces.length && pieces[i]!.start < end) {
    const p = pieces[i]!;
    if (p.start > pos) fresh.push({ start: pos, end: p.start, src });
    pos = Math.max(pos, p.end);
    i++;
  }
  if (pos < end) fresh.push({ start: pos, end, src });
  if (fresh.length === 0) return 0;
  let added = 0;
  for (const f of fresh) added += f.end - f.start;
  // Merge the fresh pieces into pieces[first..i) (they interleave with the old ones).
  const merged: Piece[] = [];
  let a = first;
  let b = 0;
  while (a < i || b < fresh.length) {
    if (b >= fresh.length || (a < i && pieces[a]!.start < fresh[b]!.start)) merged.push(pieces[a++]!);
    else merged.push(fresh[b++]!);
  }
  pieces.splice(first, i - first, ...merged);
  page.covered += added;
  return added;
}
