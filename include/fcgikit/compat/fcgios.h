/*
 * fcgios.h — the OS_* layer libfcgi exports under its application API (fcgikit compat).
 *
 * FastCGI client tools such as cgi-fcgi use it: socket creation and connection, a spawner,
 * and a tiny select()-based asynchronous I/O table (OS_Async* register one read or write per
 * descriptor; OS_DoIo performs what is ready and calls the callbacks). Applications have no
 * need for it.
 */
#ifndef _FCGIOS_H
#define _FCGIOS_H

#include "fcgi_config.h"

#include <sys/time.h>
#include <sys/types.h>

#if defined(c_plusplus) || defined(__cplusplus)
extern "C" {
#endif

#define OS_Errno errno
#define OS_SetErrno(err) errno = (err)

#ifndef DLLAPI
#if defined(FCGIKIT_COMPAT_BUILDING)
#define DLLAPI __attribute__((visibility("default")))
#else
#define DLLAPI
#endif
#endif

/* libfcgi's drop-dead select() timeout after accept on Unix sockets (seconds, microseconds). */
#define READABLE_UNIX_FD_DROP_DEAD_TIMEVAL 2, 0

#ifndef STDIN_FILENO
#define STDIN_FILENO 0
#endif
#ifndef STDOUT_FILENO
#define STDOUT_FILENO 1
#endif
#ifndef STDERR_FILENO
#define STDERR_FILENO 2
#endif
#ifndef MAXPATHLEN
#define MAXPATHLEN 1024
#endif
#ifndef X_OK
#define X_OK 0x01
#endif

#ifndef _CLIENTDATA
typedef void *ClientData;
#define _CLIENTDATA
#endif

/* Completion callback: len is the byte count transferred, 0 at end of file, -1 on error. */
typedef void (*OS_AsyncProc)(ClientData clientData, int len);

/* Prepares the layer (signal handlers as FCGX_Init). stdioFds is unused. Returns 0. */
DLLAPI int OS_LibInit(int stdioFds[3]);
/* Forgets every pending asynchronous operation. */
DLLAPI void OS_LibShutdown(void);
/* A listening socket on bindPath (as FCGX_OpenSocket). Returns it, or -1. */
DLLAPI int OS_CreateLocalIpcFd(const char *bindPath, int backlog);
/* Connects to bindPath ("HOST:PORT" or a Unix socket path). Returns the socket, or -1. */
DLLAPI int OS_FcgiConnect(char *bindPath);
/* read()/write() that retry on EINTR. Return the count, or -1. */
DLLAPI int OS_Read(int fd, char *buf, size_t len);
DLLAPI int OS_Write(int fd, char *buf, size_t len);
/* Starts execPath in a child process with listenFd as its fd 0. Returns 0, or -1. */
DLLAPI int OS_SpawnChild(char *execPath, int listenFd);
/* Registers one read of up to len bytes from fd (stdin for the first form) into buf, or one
 * write of len bytes; procPtr runs from OS_DoIo once it is done. offset is ignored (sockets
 * and pipes only). Return 0, or -1 when the descriptor already has one pending. */
DLLAPI int OS_AsyncReadStdin(void *buf, int len, OS_AsyncProc procPtr, ClientData clientData);
DLLAPI int OS_AsyncRead(int fd, int offset, void *buf, int len, OS_AsyncProc procPtr,
                        ClientData clientData);
DLLAPI int OS_AsyncWrite(int fd, int offset, void *buf, int len, OS_AsyncProc procPtr,
                         ClientData clientData);
/* Closes fd, dropping its pending operations. With shutdown set, the write side is shut down
 * and unread input drained briefly first, so the peer sees an orderly close. */
DLLAPI int OS_Close(int fd, int shutdown);
/* Shuts down the read side of a socket. */
DLLAPI int OS_CloseRead(int fd);
/* Waits up to tmo (NULL: until one is ready) for registered descriptors, performs the ready
 * operations and runs their callbacks. Returns 0, or -1 on a select() error. */
DLLAPI int OS_DoIo(struct timeval *tmo);
/* Accepts a connection on listen_sock from an allowed address (webServerAddrs: comma-separated
 * IPv4 list, NULL allows all). Returns the connection, or -1. */
DLLAPI int OS_Accept(int listen_sock, int fail_on_intr, const char *webServerAddrs);
DLLAPI int OS_IpcClose(int ipcFd, int shutdown);
/* 1 when sock is a listening (unconnected) socket, else 0. */
DLLAPI int OS_IsFcgi(int sock);
/* Adds the O_* flags to fd's file status flags. */
DLLAPI void OS_SetFlags(int fd, int flags);
/* Async-signal-safe: as FCGX_ShutdownPending. */
DLLAPI void OS_ShutdownPending(void);

#if defined(__cplusplus) || defined(c_plusplus)
}
#endif

#endif /* _FCGIOS_H */
