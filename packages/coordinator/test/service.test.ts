import { describe, expect, it } from 'vitest';
import { coordinatorUnit, SERVICE_DATA_DIR, ServiceError } from '../src/service.js';

const argv0 = ['/usr/bin/node', '/usr/lib/node_modules/wiremesh-coordinator/dist/cli.js'];

describe('the coordinator systemd unit', () => {
  it('runs serve as its own user on its state directory with no capability', () => {
    const unit = coordinatorUnit({ argv0, listen: '0.0.0.0:8080', reflectPort: 3478 });
    expect(unit).toContain(
      `ExecStart=${argv0.join(' ')} serve --listen 0.0.0.0:8080 --data-dir ${SERVICE_DATA_DIR} --reflect-port 3478\n`,
    );
    for (const line of [
      'User=wiremesh-coordinator',
      'Group=wiremesh-coordinator',
      'StateDirectory=wiremesh-coordinator',
      'StateDirectoryMode=0700',
      'CapabilityBoundingSet=\n',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'PrivateDevices=yes',
      'ProtectKernelTunables=yes',
    ])
      expect(unit).toContain(line);
    expect(unit).not.toContain('AmbientCapabilities');
  });

  it('keeps CAP_NET_BIND_SERVICE alone for a port below 1024', () => {
    const unit = coordinatorUnit({ argv0, listen: '[::]:443', reflectPort: null });
    expect(unit).toContain('CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n');
    expect(unit).toContain('AmbientCapabilities=CAP_NET_BIND_SERVICE\n');
    expect(unit).not.toContain('--reflect-port');
  });

  it('refuses a listen address without a port, in one line', () => {
    expect(() => coordinatorUnit({ argv0, listen: '0.0.0.0', reflectPort: null })).toThrow(
      new ServiceError('--listen 0.0.0.0: give HOST:PORT, e.g. 0.0.0.0:8080'),
    );
  });
});
