"""Test app for tests/e2e/test_process_model.py: reports which process served.

/ or /pid     this process's pid
/sleep?S      prints "proc_app: pid P sleeping S" (the test's sign that the
              request reached the app), sleeps S seconds (float), answers the pid
/alloc?MB     allocates MB megabytes, keeps them referenced, answers the pid
/exit         os._exit(1): the worker dies in the middle of the request
/ids          "UID GID" of the serving process
/import-pid   "IMPORT_PID PID": where the module was imported, and who serves
"""

import os
import time

IMPORT_PID = os.getpid()
HOARD = []


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    pid = os.getpid()

    def answer(body):
        body = body.encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    if path == "/sleep":
        print(f"proc_app: pid {pid} sleeping {query or '1'}", flush=True)
        time.sleep(float(query or "1"))
        return answer(str(pid))
    if path == "/alloc":
        mb = int(query or "80")
        block = bytearray(mb * 1024 * 1024)
        # touch every page so it counts in the RSS
        for i in range(0, len(block), 4096):
            block[i] = 1
        HOARD.append(block)
        return answer(str(pid))
    if path == "/exit":
        os._exit(1)
    if path == "/ids":
        return answer(f"{os.getuid()} {os.getgid()}")
    if path == "/import-pid":
        return answer(f"{IMPORT_PID} {pid}")
    return answer(str(pid))
