"""Individual appointments: slots offered by a teacher or the director, booked by parents."""
