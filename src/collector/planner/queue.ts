/**
 * The shipping queue over an observed series (DESIGN §3 Planner: "simulate the queue").
 *
 * Model: slot i lasts d_i seconds and brings a_i bytes, arriving evenly over the slot (the
 * series cannot say more about when inside an interval they came); the link drains the
 * queue at B bytes/s whenever it holds anything, first in first out. Over a slot the queue
 * is linear, so at slot ends
 *
 *     Q_i = max(0, Q_{i-1} + a_i − B·d_i)                          (Lindley)
 *
 * and since a byte that arrives to a queue of Q waits Q/B (the link is busy for it the
 * whole time), the lag of the byte arriving at t is Q(t)/B. Q is piecewise linear and its
 * maxima fall on slot ends, so the largest lag over the series is max_i Q_i / B — which is
 * also the largest age of the oldest unshipped byte, i.e. the RPO that B achieves.
 *
 * max_i Q_i/B falls as B grows, so the least B that meets a target T is found by bisection.
 * It also has a closed form (the test checks one against the other): Q_i ≤ T·B for all i
 * iff for every run of slots j..i, A(j..i) ≤ B·(D(j..i) + T), so
 *     B* = max over j ≤ i of A(j..i) / (D(j..i) + T).
 */
export interface Slot {
  seconds: number;
  bytes: number;
}

export interface LagPoint {
  /** Seconds from the start of the series to the end of the slot. */
  t: number;
  queuedBytes: number;
  lagSeconds: number;
}

export interface QueueRun {
  /** Largest lag over the series (Infinity when B is 0 and something was written). */
  maxLagSeconds: number;
  maxQueuedBytes: number;
  /** What is still queued at the end of the series. */
  finalQueuedBytes: number;
  /** Lag at every slot end. */
  curve: LagPoint[];
}

const lagOf = (q: number, b: number) => (q <= 0 ? 0 : b > 0 ? q / b : Infinity);

export function simulateQueue(slots: Slot[], bandwidth: number, initialBytes = 0): QueueRun {
  let q = initialBytes;
  let t = 0;
  let maxQ = q;
  const curve: LagPoint[] = [];
  for (const s of slots) {
    q = Math.max(0, q + s.bytes - bandwidth * s.seconds);
    t += s.seconds;
    if (q > maxQ) maxQ = q;
    curve.push({ t, queuedBytes: q, lagSeconds: lagOf(q, bandwidth) });
  }
  return { maxLagSeconds: lagOf(maxQ, bandwidth), maxQueuedBytes: maxQ, finalQueuedBytes: q, curve };
}

/** max_i Q_i / B without the curve (the bisection's inner loop). */
export function maxLag(slots: Slot[], bandwidth: number): number {
  let q = 0;
  let maxQ = 0;
  for (const s of slots) {
    q = q + s.bytes - bandwidth * s.seconds;
    if (q < 0) q = 0;
    else if (q > maxQ) maxQ = q;
  }
  return lagOf(maxQ, bandwidth);
}

/**
 * The least bandwidth (bytes/s) under which the lag never exceeds `rpoSeconds`, to a
 * relative precision of 1e-12, rounded up: the result always meets the target.
 */
export function requiredBandwidth(slots: Slot[], rpoSeconds: number): number {
  let total = 0;
  let peak = 0;
  for (const s of slots) {
    total += s.bytes;
    if (s.bytes > 0) peak = Math.max(peak, s.seconds > 0 ? s.bytes / s.seconds : Infinity);
  }
  if (total === 0) return 0;
  // Either bound meets the target: at the peak rate nothing ever queues, and at total/T even
  // everything queued at once drains within T.
  let hi = Math.min(peak, total / rpoSeconds);
  let lo = 0;
  while (hi - lo > hi * 1e-12) {
    const mid = (lo + hi) / 2;
    if (maxLag(slots, mid) <= rpoSeconds) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** The closed form of requiredBandwidth (O(n²)); for tests and small series. */
export function requiredBandwidthExact(slots: Slot[], rpoSeconds: number): number {
  let best = 0;
  for (let j = 0; j < slots.length; j++) {
    let a = 0;
    let d = 0;
    for (let i = j; i < slots.length; i++) {
      a += slots[i]!.bytes;
      d += slots[i]!.seconds;
      if (a / (d + rpoSeconds) > best) best = a / (d + rpoSeconds);
    }
  }
  return best;
}

/**
 * Seconds from the end of an outage until the link has shipped what piled up (`backlog`)
 * while the writes after it keep coming (`after`); past the series, writes are assumed to
 * go on at `meanRate`. null when the link never catches up (B ≤ the mean rate).
 */
export function drainSeconds(backlog: number, after: Slot[], bandwidth: number, meanRate: number): number | null {
  let q = backlog;
  let t = 0;
  if (q <= 0) return 0;
  if (bandwidth <= 0) return null;
  for (const s of after) {
    const net = bandwidth - s.bytes / s.seconds; // how fast the queue shrinks in this slot
    if (net > 0 && q <= net * s.seconds) return t + q / net;
    q -= net * s.seconds;
    t += s.seconds;
  }
  return bandwidth > meanRate ? t + q / (bandwidth - meanRate) : null;
}
