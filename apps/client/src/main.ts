console.log('client', process.argv.slice(2));
