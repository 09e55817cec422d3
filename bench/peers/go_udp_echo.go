// go-udp-echo: the Go reference for bench/udp-compare: the standard library's net.PacketConn and one
// ReadFrom/WriteTo loop, as a Go user would write it.
//   go-udp-echo -listen 127.0.0.1:7000
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:7000", "address to listen on")
	flag.Parse()
	c, err := net.ListenPacket("udp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-udp-echo:", err)
		os.Exit(1)
	}
	fmt.Println("listening on", c.LocalAddr())
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			continue
		}
		c.WriteTo(buf[:n], from)
	}
}
