/**
 * Both codecs as a list, so a test runs the same checks on each. A codec whose module fails to
 * load (e.g. the addon is not built) is still listed: each of its calls throws the load error, so
 * its tests fail and say why instead of being skipped.
 */
import type { DecodeOptions, EncodeOptions } from '../../lib/codec/options';
import type { Term } from '../../lib/terms';

export interface Codec {
  name: 'native' | 'pure';
  termToBinary(term: Term, options?: EncodeOptions): Buffer;
  binaryToTerm(bytes: Uint8Array, options?: DecodeOptions): Term;
  /** The reason the codec could not be loaded, if it could not. */
  loadError?: Error;
}

type Fns = Pick<Codec, 'termToBinary' | 'binaryToTerm'>;

async function load(name: Codec['name'], get: () => Promise<Fns>): Promise<Codec> {
  try {
    const fns = await get();
    if (typeof fns.termToBinary !== 'function' || typeof fns.binaryToTerm !== 'function') {
      throw new Error('termToBinary/binaryToTerm are not exported');
    }
    return { name, termToBinary: fns.termToBinary, binaryToTerm: fns.binaryToTerm };
  } catch (e) {
    const loadError = new Error(`the ${name} codec did not load: ${(e as Error).message}`, { cause: e });
    const fail = (): never => {
      throw loadError;
    };
    return { name, termToBinary: fail, binaryToTerm: fail, loadError };
  }
}

export const nativeCodec: Codec = await load('native', async () => {
  const m = await import('../../lib/codec/native');
  return { termToBinary: m.termToBinary, binaryToTerm: m.binaryToTerm };
});

export const pureCodec: Codec = await load('pure', async () => {
  const [enc, dec] = await Promise.all([import('../../lib/codec/encode'), import('../../lib/codec/decode')]);
  return { termToBinary: enc.termToBinary, binaryToTerm: dec.binaryToTerm };
});

export const codecs: Codec[] = [nativeCodec, pureCodec];
