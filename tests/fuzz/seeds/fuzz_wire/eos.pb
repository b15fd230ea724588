
gambar-augment[1/2]
done