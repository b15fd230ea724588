
evalÒ	"running