import type { APIGatewayProxyEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { readJsonBody, requireMethod } from '#shared/http';

const event = (overrides: Partial<APIGatewayProxyEvent>): APIGatewayProxyEvent =>
  ({
    httpMethod: 'POST',
    headers: {},
    body: null,
    isBase64Encoded: false,
    ...overrides,
  }) as APIGatewayProxyEvent;

describe('readJsonBody', () => {
  it('parses a JSON body, plain or base64-encoded', () => {
    expect(readJsonBody(event({ body: '{"sql":"SELECT 1"}' }))).toEqual({ sql: 'SELECT 1' });
    const encoded = Buffer.from('{"sql":"SELECT 2"}').toString('base64');
    expect(readJsonBody(event({ body: encoded, isBase64Encoded: true }))).toEqual({
      sql: 'SELECT 2',
    });
  });

  it.each([
    [event({ body: null }), 'INVALID_JSON', 'empty'],
    [event({ body: '{"sql": ' }), 'INVALID_JSON', 'not valid JSON'],
    [
      event({ body: '{}', headers: { 'Content-Type': 'text/plain' } }),
      'UNSUPPORTED_MEDIA_TYPE',
      'application/json',
    ],
  ])('rejects %#', (input, code, text) => {
    expect(() => readJsonBody(input)).toThrow(
      expect.objectContaining({ code, message: expect.stringContaining(text) }),
    );
  });

  it('accepts application/json with a charset and vendor +json types', () => {
    for (const type of ['application/json; charset=utf-8', 'application/vnd.api+json']) {
      expect(readJsonBody(event({ body: '1', headers: { 'content-type': type } }))).toBe(1);
    }
  });
});

describe('requireMethod', () => {
  it('rejects other methods with METHOD_NOT_ALLOWED', () => {
    expect(() => requireMethod(event({ httpMethod: 'GET' }), 'POST')).toThrow(
      expect.objectContaining({ code: 'METHOD_NOT_ALLOWED' }),
    );
    expect(() => requireMethod(event({ httpMethod: 'post' }), 'POST')).not.toThrow();
  });
});
