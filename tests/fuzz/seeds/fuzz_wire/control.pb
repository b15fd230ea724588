

checkpoint
step100