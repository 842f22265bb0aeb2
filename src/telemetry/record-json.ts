/**
 * A record's JSON text, made once per record: the bus hands each record to every sink in turn, and
 * the ring (which keeps records as text) and the log line (which writes it) both need the same
 * `JSON.stringify`. Remembering the last object serialised makes the second ask free. Records are
 * never changed once published (a sink only reads them), so the object is the key.
 */
let lastObject: object | null = null
let lastJson = ''

export function recordJson(record: object): string {
  if (record !== lastObject) {
    lastJson = JSON.stringify(record)
    lastObject = record
  }
  return lastJson
}
