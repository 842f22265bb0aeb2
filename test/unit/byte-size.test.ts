import t from 'tap'
import { formatSizeBytes, parseSizeBytes } from '../../src/byte-size.js'

t.test('sizes read as configured and print as a person writes them', async (t) => {
  t.equal(parseSizeBytes('64KiB'), 65_536)
  t.equal(parseSizeBytes('100 MB'), 100_000_000)
  t.equal(parseSizeBytes('1.5MiB'), null, 'whole numbers only')
  t.equal(formatSizeBytes(65_536), '64 KiB', 'not "0 MiB"')
  t.equal(formatSizeBytes(100 * 1024 * 1024), '100 MiB')
  t.equal(formatSizeBytes(1536 * 1024), '1.5 MiB')
  t.equal(formatSizeBytes(2 * 1024 ** 3), '2 GiB')
  t.equal(formatSizeBytes(500), '500 bytes')
})
