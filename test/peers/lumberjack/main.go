// A Lumberjack v2 receiver for the capture tests: the server package of Elastic's go-lumber
// (the code Beats' own tests receive with). It prints "listening <port>" on stderr, then each
// event it receives as one JSON line on stdout, and acknowledges each batch unless told not to.
// Commands on stdin, one a line: "hold" (stop acknowledging: batches stay unacknowledged),
// "ack" (acknowledge again, held batches first), "die" (exit at once, like kill -9).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"

	lj "github.com/elastic/go-lumber/lj"
	v2 "github.com/elastic/go-lumber/server/v2"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(2)
	}
	srv, err := v2.NewWithListener(ln, v2.JSONDecoder(json.Unmarshal))
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(2)
	}

	var mu sync.Mutex
	holding := false
	var held []*lj.Batch
	out := bufio.NewWriter(os.Stdout)

	go func() {
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			mu.Lock()
			switch in.Text() {
			case "hold":
				holding = true
			case "ack":
				holding = false
				for _, b := range held {
					b.ACK()
				}
				held = nil
			case "die":
				out.Flush()
				os.Exit(1)
			}
			mu.Unlock()
		}
	}()

	fmt.Fprintf(os.Stderr, "listening %d\n", ln.Addr().(*net.TCPAddr).Port)
	for b := range srv.ReceiveChan() {
		mu.Lock()
		for _, e := range b.Events {
			line, _ := json.Marshal(e)
			out.Write(line)
			out.WriteByte('\n')
		}
		out.Flush()
		if holding {
			held = append(held, b)
		} else {
			b.ACK()
		}
		mu.Unlock()
	}
}
