import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseLabelledCsv } from '../../../src/agents/classifier/training-data';
import { createPiiRedactAgent, redactPii } from '../../../src/agents/pii-redact.agent';
import { findPii, resolveOverlaps, type PiiSpan } from '../../../src/agents/pii/detectors';
import { fakeContext } from './fake-context';

const typesIn = (text: string) => findPii(text).map((f) => f.type);
const valuesIn = (text: string) => findPii(text).map((f) => [f.type, text.slice(f.start, f.end)]);

describe('pii-redact', () => {
  describe('credit cards', () => {
    it('redacts Luhn-valid numbers written plain, with spaces or with dashes', () => {
      expect(valuesIn('card 4111111111111111 ok')).toEqual([['CREDIT_CARD', '4111111111111111']]);
      expect(valuesIn('card 4111 1111 1111 1111.')).toEqual([['CREDIT_CARD', '4111 1111 1111 1111']]);
      expect(valuesIn('amex 3782-822463-10005')).toEqual([['CREDIT_CARD', '3782-822463-10005']]);
    });

    it('leaves a number with a bad check digit alone', () => {
      expect(redactPii('card 4111 1111 1111 1112 please').text).toBe('card 4111 1111 1111 1112 please');
    });

    it('finds a card written right after an unrelated number', () => {
      expect(valuesIn('order 12 4111 1111 1111 1111')).toEqual([['CREDIT_CARD', '4111 1111 1111 1111']]);
    });

    it('does not take a card out of the middle of a longer digit run', () => {
      expect(typesIn('ref 94111111111111111117')).toEqual([]);
    });
  });

  describe('IBANs', () => {
    it('redacts grouped, compact and lower-case forms with valid checksums', () => {
      expect(valuesIn('pay GB82 WEST 1234 5698 7654 32 today')).toEqual([['IBAN_CODE', 'GB82 WEST 1234 5698 7654 32']]);
      expect(valuesIn('iban: DE89370400440532013000.')).toEqual([['IBAN_CODE', 'DE89370400440532013000']]);
      expect(typesIn('my iban is gb82west12345698765432')).toEqual(['IBAN_CODE']);
    });

    it('leaves an IBAN with a wrong checksum alone (and does not call its digits a phone number)', () => {
      expect(redactPii('pay GB82 WEST 1234 5698 7654 33 today').findings).toEqual([]);
    });

    it('rejects a valid IBAN that runs straight into more letters or digits', () => {
      expect(typesIn('GB82WEST12345698765432X')).toEqual([]);
    });
  });

  describe('US SSNs', () => {
    it('redacts dashed and spaced numbers with valid area, group and serial', () => {
      expect(valuesIn('SSN 536-22-4312')).toEqual([['US_SSN', '536-22-4312']]);
      expect(valuesIn('SSN 536 22 4312')).toEqual([['US_SSN', '536 22 4312']]);
    });

    it.each(['000-12-3456', '666-12-3456', '912-12-3456', '536-00-4312', '536-22-0000'])(
      'leaves the invalid %s alone, as SSN and as anything else',
      (ssn) => {
        expect(findPii(`SSN ${ssn}`)).toEqual([]);
      },
    );

    it('does not accept mixed separators', () => {
      expect(typesIn('id 536-22 4312')).not.toContain('US_SSN');
    });
  });

  describe('IP addresses', () => {
    it('redacts IPv4 and full, compressed and IPv4-mapped IPv6', () => {
      expect(valuesIn('from 192.168.0.1.')).toEqual([['IP_ADDRESS', '192.168.0.1']]);
      expect(valuesIn('host 2001:0db8:85a3:0000:0000:8a2e:0370:7334 up')).toEqual([
        ['IP_ADDRESS', '2001:0db8:85a3:0000:0000:8a2e:0370:7334'],
      ]);
      expect(valuesIn('via 2001:db8::1, then ::1')).toEqual([
        ['IP_ADDRESS', '2001:db8::1'],
        ['IP_ADDRESS', '::1'],
      ]);
      expect(valuesIn('mapped ::ffff:192.0.2.128 here')).toEqual([['IP_ADDRESS', '::ffff:192.0.2.128']]);
    });

    it('leaves out-of-range octets, version numbers, times and MAC addresses alone', () => {
      expect(findPii('bad 256.1.1.1 and 1.2.3.4.5 at 10:30:00, mac 00:1A:2B:3C:4D:5E, and 1::2::3')).toEqual([]);
    });
  });

  describe('e-mail addresses', () => {
    it('redacts addresses with dots, plus tags and subdomains', () => {
      expect(valuesIn('mail first.last+tag@mail.example.co.uk, thanks')).toEqual([
        ['EMAIL_ADDRESS', 'first.last+tag@mail.example.co.uk'],
      ]);
    });

    it('ignores @handles and addresses without a top-level domain', () => {
      expect(findPii('ping @someone or user@localhost')).toEqual([]);
    });
  });

  describe('phone numbers', () => {
    it.each(['+44 20 7946 0958', '(415) 555-0132', '+1-202-555-0147', '020 7946 0321', '+41 (0)62 585 51 90', '555-867-5309 x42'])(
      'redacts %s',
      (phone) => {
        expect(valuesIn(`number: ${phone}!`)).toEqual([['PHONE_NUMBER', phone]]);
      },
    );

    it('needs a cue word for short or ungrouped numbers', () => {
      expect(typesIn('call me on 07700 900123')).toEqual(['PHONE_NUMBER']);
      expect(typesIn('I live at 704 1436 Redbud Drive')).toEqual([]);
      expect(typesIn('fax 9498777106')).toEqual(['PHONE_NUMBER']);
      expect(typesIn('order 9498777106 shipped')).toEqual([]);
    });

    it('leaves dates, timestamps and amounts alone', () => {
      expect(findPii('On 2021-03-04 12:30:00 I paid 1.234.567 and on 04-03-2021 again')).toEqual([]);
    });
  });

  describe('overlaps and offsets', () => {
    it('keeps the validated type when a phone-shaped span covers the same text', () => {
      expect(typesIn('phone 536-22-4312')).toEqual(['US_SSN']);
    });

    it('resolves overlapping candidates by strength, then length, then priority, then position', () => {
      const spans: PiiSpan[] = [
        { type: 'PHONE_NUMBER', start: 0, end: 20 },
        { type: 'US_SSN', start: 5, end: 16 },
        { type: 'IP_ADDRESS', start: 30, end: 40 },
        { type: 'EMAIL_ADDRESS', start: 32, end: 42 },
        { type: 'CREDIT_CARD', start: 50, end: 60 },
        { type: 'IBAN_CODE', start: 50, end: 60 },
      ];
      expect(resolveOverlaps(spans)).toEqual([
        { type: 'US_SSN', start: 5, end: 16 },
        { type: 'IP_ADDRESS', start: 30, end: 40 },
        { type: 'CREDIT_CARD', start: 50, end: 60 },
      ]);
      expect(resolveOverlaps([...spans].reverse())).toEqual(resolveOverlaps(spans));
    });

    it('reports offsets into the original text, before any replacement', () => {
      const text = 'a@b.io then 4111 1111 1111 1111 then 10.0.0.1';
      const { findings, text: redacted, counts } = redactPii(text);
      expect(findings.map((f) => text.slice(f.start, f.end))).toEqual(['a@b.io', '4111 1111 1111 1111', '10.0.0.1']);
      expect(redacted).toBe('<EMAIL_ADDRESS> then <CREDIT_CARD> then <IP_ADDRESS>');
      expect(counts).toEqual({
        CREDIT_CARD: 1,
        IBAN_CODE: 0,
        US_SSN: 0,
        IP_ADDRESS: 1,
        EMAIL_ADDRESS: 1,
        PHONE_NUMBER: 0,
      });
    });

    it('counts offsets in UTF-16 units, like JavaScript string indices', () => {
      const text = '😀 mail x@y.org';
      const [finding] = redactPii(text).findings;
      expect(text.slice(finding.start, finding.end)).toBe('x@y.org');
    });
  });

  it('redacts every piece of PII in the demo tickets and nothing of the surrounding words', () => {
    const file = join(__dirname, '../../../src/demo/tickets.csv');
    const tickets = parseLabelledCsv(readFileSync(file), file);
    const all = tickets.map((t) => redactPii(t.text));
    const total = (type: string) => all.reduce((n, r) => n + r.counts[type], 0);
    expect(total('EMAIL_ADDRESS')).toBe(7);
    expect(total('PHONE_NUMBER')).toBe(6);
    expect(total('CREDIT_CARD')).toBe(4);
    expect(total('IBAN_CODE')).toBe(3);
    expect(total('US_SSN')).toBe(2);
    expect(total('IP_ADDRESS')).toBe(2);
    const leftovers = all.map((r) => r.text).join('\n');
    expect(leftovers).not.toMatch(/@|4111|WEST|203\.0|2001:db8|555-0132|7946/);
    expect(leftovers).toContain('It ends in 1111');
  });

  it('stays fast on long, number-heavy input', () => {
    const text = Array.from({ length: 5_000 }, (_, i) => `${i} ${i * 7}-${i % 97} 12:${i % 60} ab:cd:`).join(' ');
    const started = performance.now();
    findPii(text);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('runs as an agent', async () => {
    const agent = createPiiRedactAgent();
    expect(agent.name).toBe('pii-redact');
    const output = await agent.run({ text: 'write to a@b.io' }, fakeContext());
    expect(agent.output.parse(output)).toEqual(output);
    expect(output.text).toBe('write to <EMAIL_ADDRESS>');
  });
});
