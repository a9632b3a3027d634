import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRange } from '../../src/http/distribution/blobs.ts';

describe('parseRange (GET blob Range header)', () => {
  type Want = { start: number; end: number } | undefined | 'unsatisfiable';
  const cases: [string, string | undefined, number, Want][] = [
    ['no header', undefined, 10, undefined],
    ['empty header', '', 10, undefined],
    ['first byte', 'bytes=0-0', 10, { start: 0, end: 0 }],
    ['last byte by range', 'bytes=9-9', 10, { start: 9, end: 9 }],
    ['middle', 'bytes=2-5', 10, { start: 2, end: 5 }],
    ['whole', 'bytes=0-9', 10, { start: 0, end: 9 }],
    ['end beyond size is clamped', 'bytes=0-100', 10, { start: 0, end: 9 }],
    ['end far beyond size', `bytes=3-${'9'.repeat(30)}`, 10, { start: 3, end: 9 }],
    ['open-ended', 'bytes=5-', 10, { start: 5, end: 9 }],
    ['open-ended from 0', 'bytes=0-', 10, { start: 0, end: 9 }],
    ['open-ended last byte', 'bytes=9-', 10, { start: 9, end: 9 }],
    ['suffix', 'bytes=-3', 10, { start: 7, end: 9 }],
    ['suffix of 1', 'bytes=-1', 10, { start: 9, end: 9 }],
    ['suffix equal to size', 'bytes=-10', 10, { start: 0, end: 9 }],
    ['suffix larger than size', 'bytes=-50', 10, { start: 0, end: 9 }],
    ['surrounding whitespace', '  bytes=1-2 ', 10, { start: 1, end: 2 }],
    ['start at size', 'bytes=10-', 10, 'unsatisfiable'],
    ['start at size, closed', 'bytes=10-20', 10, 'unsatisfiable'],
    ['start beyond size', 'bytes=100-200', 10, 'unsatisfiable'],
    ['huge start', `bytes=${'9'.repeat(30)}-`, 10, 'unsatisfiable'],
    ['suffix of 0', 'bytes=-0', 10, 'unsatisfiable'],
    ['any range of an empty blob', 'bytes=0-0', 0, 'unsatisfiable'],
    ['open range of an empty blob', 'bytes=0-', 0, 'unsatisfiable'],
    ['suffix of an empty blob', 'bytes=-5', 0, 'unsatisfiable'],
    ['inverted range is ignored', 'bytes=5-3', 10, undefined],
    ['multi-range is ignored', 'bytes=0-1,3-4', 10, undefined],
    ['multi-range with spaces is ignored', 'bytes=0-1, 3-4', 10, undefined],
    ['other unit is ignored', 'items=0-1', 10, undefined],
    ['no unit is ignored', '0-1', 10, undefined],
    ['bare dash is ignored', 'bytes=-', 10, undefined],
    ['garbage is ignored', 'garbage', 10, undefined],
    ['negative start is ignored', 'bytes=--1', 10, undefined],
    ['hex is ignored', 'bytes=0x0-0x5', 10, undefined],
    ['uppercase unit is ignored', 'BYTES=0-1', 10, undefined],
  ];
  for (const [what, header, size, want] of cases) {
    it(`${what}: ${JSON.stringify(header)} of ${size} bytes`, () => assert.deepEqual(parseRange(header, size), want));
  }

  it('every satisfiable range lies inside the blob', () => {
    const headers = ['bytes=0-0', 'bytes=-1', 'bytes=3-', 'bytes=0-1000', 'bytes=-1000', 'bytes=7-8'];
    for (const size of [1, 2, 5, 9, 100]) {
      for (const h of headers) {
        const r = parseRange(h, size);
        if (r === undefined || r === 'unsatisfiable') continue;
        assert.ok(r.start >= 0 && r.start <= r.end && r.end < size, `${h} of ${size}: ${JSON.stringify(r)}`);
      }
    }
  });
});
