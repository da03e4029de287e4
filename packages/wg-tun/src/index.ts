/**
 * @wiremesh/wg-tun: the userspace WireGuard device (a drop-in for wireguard-go): TUN and UDP I/O,
 * the shell around wg-core's engine, and the UAPI socket that wg(8) and wg-quick(8) talk to.
 */
export {
  openTun,
  createFakeTun,
  checkInterfaceName,
  type TunDevice,
  type TunOptions,
  type PacketBatch,
  type FakeTun,
  type FakeTunOptions,
  type IoStats,
  type TunOffloads,
} from './tun.js';
export {
  openUdpBind,
  createFakeNetwork,
  type UdpBind,
  type UdpBindOptions,
  type Datagram,
  type DatagramBatch,
  type BindFamily,
  type FakeNetwork,
  type FakeNetworkOptions,
  type FakeBindOptions,
  type TransitDatagram,
} from './udp.js';
export {
  createUserspaceDevice,
  configToRequest,
  UapiError,
  type UserspaceDevice,
  type UserspaceDeviceOptions,
  type DeviceConfig,
  type PeerConfig,
  type PeerStats,
  type DeviceDrops,
  type CryptoChoice,
  type KeyInput,
} from './userspace-device.js';
export {
  startUapiServer,
  uapiSocketPath,
  UapiSession,
  type UapiServer,
  type UapiServerOptions,
  type UapiHandler,
  type UapiFeedResult,
} from './uapi-server.js';
export {
  createLogger,
  parseLogLevel,
  silentLogger,
  type Logger,
  type LogLevel,
  type LoggerOptions,
} from './log.js';
export { UAPI_SOCKET_DIR, DEFAULT_TUN_MTU } from './constants.js';
