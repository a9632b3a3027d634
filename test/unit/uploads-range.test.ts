import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryError } from '../../src/core/errors.ts';
import { parseContentRange } from '../../src/core/content/uploads.ts';

describe('parseContentRange (chunked upload Content-Range)', () => {
  const valid: [string, number, number][] = [
    ['0-99', 0, 99],
    ['0-0', 0, 0],
    ['100-199', 100, 199],
    ['bytes=0-99', 0, 99],
    ['bytes 0-99', 0, 99],
    ['0-99/100', 0, 99],
    ['bytes 0-99/100', 0, 99],
    ['bytes 0-99/*', 0, 99],
    ['bytes=5-9/*', 5, 9],
    ['  10-19  ', 10, 19],
    ['0000-0009', 0, 9],
    [`0-${Number.MAX_SAFE_INTEGER}`, 0, Number.MAX_SAFE_INTEGER],
  ];
  for (const [header, start, end] of valid) {
    it(`accepts ${JSON.stringify(header)} → ${start}-${end}`, () => assert.deepEqual(parseContentRange(header), { start, end }));
  }

  const malformed: string[] = [
    '',
    ' ',
    'garbage',
    '0',
    '0-',
    '-99',
    '0--99',
    '0-99-',
    'a-b',
    '0x0-0x9',
    '-1-5',
    '1.5-2',
    'bytes=',
    'bytes=-5',
    'items=0-99',
    'bytes:0-99',
    '0-99/',
    '0-99/abc',
    '0-99/100/200',
    '0-99,100-199',
    '0 - 99',
    '\u0000',
    '٠-٩', // Arabic-Indic digits are not ASCII digits
  ];
  for (const header of malformed) {
    it(`rejects malformed ${JSON.stringify(header)} with BLOB_UPLOAD_INVALID (400)`, () => {
      assert.throws(
        () => parseContentRange(header),
        (e: unknown) => e instanceof RegistryError && e.code === 'BLOB_UPLOAD_INVALID' && e.status === 400,
      );
    });
  }

  const unsatisfiable: string[] = ['99-0', '10-9', `0-${'9'.repeat(20)}`, `${'9'.repeat(20)}-${'9'.repeat(21)}`];
  for (const header of unsatisfiable) {
    it(`rejects inverted or unsafe ${JSON.stringify(header.slice(0, 30))} with 416`, () => {
      assert.throws(
        () => parseContentRange(header),
        (e: unknown) => e instanceof RegistryError && e.code === 'RANGE_INVALID' && e.status === 416,
      );
    });
  }

  it('does not echo a huge header in full', () => {
    assert.throws(
      () => parseContentRange('x'.repeat(10_000)),
      (e: unknown) => e instanceof RegistryError && e.message.length < 200,
    );
  });
});
