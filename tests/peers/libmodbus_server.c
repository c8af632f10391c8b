/* A Modbus/TCP reference peer on stock libmodbus (Debian libmodbus-dev 3.1.6): nothing of tek-harness in it.
 *
 * One contiguous block per table, as libmodbus maps them (modbus_mapping_new_start_address), every request
 * answered by libmodbus's own modbus_reply. Listens on 127.0.0.1:PORT (argv[1]) for any number of
 * connections (select), prints "ready" once listening, and runs until it is killed (the test stops it by PID).
 *
 * Register contents (tests/data/libmodbus-peer.yaml declares a part of them, reserves the rest):
 *   holding 0..31: 1000 + address, except 2 = 247 (an undeclared vendor setting: "its RS-485 address"),
 *                  4 = 15 (a writable setting), 10..11 = 0x6553F100 (a writable u32, a unix time)
 *   input 0..15: 2000 + address
 *   coils 0..15: address % 2; discrete inputs 0..15: (address + 1) % 2
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <modbus.h>

#define BITS 16
#define HOLDING 32
#define INPUTS 16

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", atoi(argv[1]));
    modbus_mapping_t *map = modbus_mapping_new_start_address(0, BITS, 0, BITS, 0, HOLDING, 0, INPUTS);
    if (ctx == NULL || map == NULL) {
        fprintf(stderr, "libmodbus: %s\n", modbus_strerror(errno));
        return 1;
    }
    for (int i = 0; i < HOLDING; i++)
        map->tab_registers[i] = (uint16_t)(1000 + i);
    map->tab_registers[2] = 247;
    map->tab_registers[4] = 15;
    map->tab_registers[10] = 0x6553;
    map->tab_registers[11] = 0xF100;
    for (int i = 0; i < INPUTS; i++)
        map->tab_input_registers[i] = (uint16_t)(2000 + i);
    for (int i = 0; i < BITS; i++) {
        map->tab_bits[i] = (uint8_t)(i % 2);
        map->tab_input_bits[i] = (uint8_t)((i + 1) % 2);
    }

    int server = modbus_tcp_listen(ctx, 32);
    if (server < 0) {
        fprintf(stderr, "listen: %s\n", modbus_strerror(errno));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);

    fd_set open_fds;
    FD_ZERO(&open_fds);
    FD_SET(server, &open_fds);
    int fd_max = server;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    for (;;) {
        fd_set ready = open_fds;
        if (select(fd_max + 1, &ready, NULL, NULL, NULL) < 0) {
            if (errno == EINTR)
                continue;
            perror("select");
            return 1;
        }
        for (int fd = 0; fd <= fd_max; fd++) {
            if (!FD_ISSET(fd, &ready))
                continue;
            if (fd == server) {
                int client = modbus_tcp_accept(ctx, &server);
                if (client >= 0 && client < FD_SETSIZE) {
                    FD_SET(client, &open_fds);
                    if (client > fd_max)
                        fd_max = client;
                } else if (client >= 0) {
                    close(client);
                }
                continue;
            }
            modbus_set_socket(ctx, fd);
            int rc = modbus_receive(ctx, query);
            if (rc > 0) {
                modbus_reply(ctx, query, rc, map);
            } else if (rc == -1) {
                close(fd); /* closed by the client, or a frame libmodbus could not read */
                FD_CLR(fd, &open_fds);
            }
        }
    }
}
