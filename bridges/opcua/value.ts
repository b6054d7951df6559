import type { DataValue, Variant } from 'node-opcua-client';
import type { OpcuaModule } from './node-opcua.js';

/** What a value change adds to a record: the value as JSON, its type, status and both timestamps. */
export interface ValueFields {
  value: unknown;
  dataType: string;
  arrayType?: 'Array' | 'Matrix';
  dimensions?: number[];
  statusCode: string;
  statusCodeValue: number;
  sourceTime?: string;
  sourcePicoseconds?: number;
  serverTime?: string;
  serverPicoseconds?: number;
}

export function valueFields(ua: OpcuaModule, dv: DataValue): ValueFields {
  const v: Variant = dv.value;
  const dataType = ua.DataType[v.dataType] ?? `DataType${v.dataType}`;
  const one = (x: unknown) => jsonValue(ua, v.dataType, x);
  const fields: ValueFields = {
    value: v.arrayType === ua.VariantArrayType.Scalar ? one(v.value) : Array.from((v.value ?? []) as ArrayLike<unknown>, one),
    dataType,
    statusCode: dv.statusCode.name,
    statusCodeValue: dv.statusCode.value,
    sourceTime: dv.sourceTimestamp?.toISOString(),
    sourcePicoseconds: dv.sourceTimestamp ? dv.sourcePicoseconds : undefined,
    serverTime: dv.serverTimestamp?.toISOString(),
    serverPicoseconds: dv.serverTimestamp ? dv.serverPicoseconds : undefined,
  };
  if (v.arrayType === ua.VariantArrayType.Array) fields.arrayType = 'Array';
  if (v.arrayType === ua.VariantArrayType.Matrix) {
    fields.arrayType = 'Matrix';
    fields.dimensions = v.dimensions ?? undefined;
  }
  return fields;
}

/** One OPC-UA value as JSON: 64-bit integers as numbers while exact (else strings), bytes as base64, structures via their JSON form. */
function jsonValue(ua: OpcuaModule, type: number, x: unknown): unknown {
  const D = ua.DataType;
  if (x === null || x === undefined) return null;
  switch (type) {
    case D.Float:
    case D.Double:
      // JSON has no NaN or infinities
      return Number.isFinite(x) ? x : String(x);
    case D.Int64:
    case D.UInt64:
      return int64(x as [number, number], type === D.Int64);
    case D.DateTime:
      return x instanceof Date && !Number.isNaN(x.getTime()) ? x.toISOString() : null;
    case D.ByteString:
      return Buffer.isBuffer(x) ? x.toString('base64') : null;
    case D.LocalizedText:
      return (x as { text?: string | null }).text ?? null;
    case D.StatusCode:
      return (x as { name: string }).name;
    case D.NodeId:
    case D.ExpandedNodeId:
    case D.QualifiedName:
    case D.Guid:
    case D.XmlElement:
      return String(x);
    case D.ExtensionObject:
    case D.DataValue:
    case D.Variant:
    case D.DiagnosticInfo:
      return structure(x);
    default:
      return x;
  }
}

/** node-opcua carries 64-bit integers as [high, low] 32-bit words. */
function int64(words: [number, number], signed: boolean): number | string {
  if (!Array.isArray(words) || words.length !== 2) return String(words);
  const n = (BigInt.asUintN(32, BigInt(words[0])) << 32n) | BigInt.asUintN(32, BigInt(words[1]));
  const value = signed ? BigInt.asIntN(64, n) : n;
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
}

function structure(x: unknown): unknown {
  try {
    const withJson = x as { toJSON?: () => unknown };
    return JSON.parse(
      JSON.stringify(typeof withJson.toJSON === 'function' ? withJson.toJSON() : x, (_k, v: unknown) =>
        typeof v === 'bigint' ? v.toString() : v,
      ),
    );
  } catch {
    return String(x);
  }
}
