/** The pure-TypeScript crypto provider, its @noble primitives loaded with this module. */
import { nobleImpl } from './noble-impl.js';
import { nobleCrypto, provideNoble } from './noble-lazy.js';

provideNoble(nobleImpl);

export { nobleCrypto };
