import { ibanLength, isCardNumber, isIbanValid, isLuhnValid, isUsSsn } from '../../../src/agents/pii/checksums';

describe('Luhn and card numbers', () => {
  it.each(['4111111111111111', '5555555555554444', '378282246310005', '6011111111111117', '4222222222222'])(
    'accepts the test card number %s',
    (digits) => {
      expect(isCardNumber(digits)).toBe(true);
    },
  );

  it('rejects a number whose check digit is off by one', () => {
    expect(isLuhnValid('4111111111111112')).toBe(false);
    expect(isCardNumber('4111111111111112')).toBe(false);
  });

  it('rejects Luhn-valid numbers outside 13 to 19 digits', () => {
    expect(isLuhnValid('4111111111111111111111')).toBe(false);
    expect(isLuhnValid('424242424242')).toBe(true);
    expect(isCardNumber('424242424242')).toBe(false);
  });

  it('rejects a run of one repeated digit even though it passes Luhn', () => {
    expect(isLuhnValid('0000000000000000')).toBe(true);
    expect(isCardNumber('0000000000000000')).toBe(false);
  });

  it('rejects anything that is not digits', () => {
    expect(isLuhnValid('4111 1111 1111 1111')).toBe(false);
    expect(isLuhnValid('')).toBe(false);
  });
});

describe('IBAN', () => {
  it.each(['GB82WEST12345698765432', 'DE89370400440532013000', 'NO9386011117947', 'FR1420041010050500013M02606', 'gb82west12345698765432'])(
    'accepts %s',
    (iban) => {
      expect(isIbanValid(iban)).toBe(true);
    },
  );

  it('rejects a wrong check digit', () => {
    expect(isIbanValid('GB83WEST12345698765432')).toBe(false);
  });

  it('rejects an IBAN one character short for its country', () => {
    expect(isIbanValid('DE8937040044053201300')).toBe(false);
    expect(ibanLength('DE')).toBe(22);
  });

  it('rejects countries that do not issue IBANs', () => {
    expect(ibanLength('US')).toBeUndefined();
    expect(isIbanValid('US64SVBKUS6S3300958879')).toBe(false);
  });
});

describe('US SSN', () => {
  it('accepts an ordinary number', () => {
    expect(isUsSsn('536224312')).toBe(true);
  });

  it.each([
    ['000123456', 'area 000'],
    ['666123456', 'area 666'],
    ['912345678', 'area 9xx'],
    ['536004312', 'group 00'],
    ['536220000', 'serial 0000'],
    ['078051120', 'the voided Woolworth number'],
  ])('rejects %s (%s)', (digits) => {
    expect(isUsSsn(digits)).toBe(false);
  });
});
