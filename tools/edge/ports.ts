import { createServer, type Server } from 'node:net';

/**
 * `count` distinct ports the OS says are free on `host` (each listened on as port 0, all held until the last is
 * known), so that the demo starts whatever PORT is, however high.
 */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          server.once('error', (error: NodeJS.ErrnoException) => reject(new Error(`no free port on ${host}: the OS refused one (${error.code ?? error.message})`)));
          server.listen(0, host, () => resolve((server.address() as { port: number }).port));
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => (server.listening ? server.close(resolve) : resolve(undefined)))));
  }
}
