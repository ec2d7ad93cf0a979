package linux

// ExpireReservations forgets that pulled images are about to be used, as if reserveFor passed.
func ExpireReservations(d *Driver) {
	d.imu.Lock()
	defer d.imu.Unlock()
	clear(d.reserved)
}
